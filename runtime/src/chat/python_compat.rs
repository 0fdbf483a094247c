//! What transformers' chat-template environment has beyond Jinja's defaults, so that
//! templates render the same text under minijinja: the `tojson` filter with Python's
//! `json.dumps` layout, the `strftime_now` function (local time), its `{% generation %}`
//! blocks, and Python's spelling of `True`, `False` and `None` in output.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Output, State, Value};

/// Writes a value into the rendered text as Jinja under Python does: booleans as `True`
/// and `False`, none as `None`; everything else as minijinja does. Only what `{{ ... }}`
/// prints directly: a boolean joined into a string (`'a' ~ flag`, `flag | string`) or
/// inside a printed list keeps minijinja's `true` / `none`.
pub(crate) fn python_formatter(
    out: &mut Output,
    state: &State,
    value: &Value,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Bool => out.write_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::None => out.write_str("None"),
        _ => return minijinja::escape_formatter(out, state, value),
    }
    .map_err(Error::from)
}

/// The `tojson` filter as transformers defines it: `json.dumps(value, ensure_ascii=False,
/// indent=None, separators=None, sort_keys=False)`, each keyword accepted. Python's
/// default separators are `", "` and `": "` (`","` between items once `indent` is set);
/// maps keep their order.
pub(crate) fn tojson(value: Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_str(), i64::try_from(v.clone())) {
            (Some(s), _) => Some(s.to_string()),
            (None, Ok(n)) if n <= MAX_INDENT => Some(" ".repeat(n.max(0) as usize)),
            (None, Ok(n)) => {
                return Err(invalid(&format!(
                    "tojson: indent {n} is larger than {MAX_INDENT}"
                )))
            }
            _ => return Err(invalid("tojson: indent must be an integer or a string")),
        },
    };
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let (item, key) = match separators.as_deref() {
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => return Err(invalid("tojson: separators must be two strings")),
    };
    let layout = JsonLayout {
        indent,
        item,
        key,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let mut out = String::new();
    layout.write(&value, 0, &mut out)?;
    Ok(out)
}

/// The widest `tojson` indent accepted (a template cannot make rill allocate without
/// bound).
const MAX_INDENT: i64 = 256;

fn invalid(message: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.to_string())
}

/// How `json.dumps` lays out its text.
struct JsonLayout {
    indent: Option<String>,
    item: String,
    key: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl JsonLayout {
    fn write(&self, value: &Value, level: usize, out: &mut String) -> Result<(), Error> {
        match value.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number if value.is_integer() => out.push_str(&value.to_string()),
            ValueKind::Number => out.push_str(&python_float(f64::try_from(value.clone())?)),
            ValueKind::String => self.write_string(value.as_str().unwrap_or_default(), out),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter()?.collect();
                self.write_container(('[', ']'), items.len(), level, out, |i, out| {
                    self.write(&items[i], level + 1, out)
                })?;
            }
            ValueKind::Map => {
                let mut keys: Vec<Value> = value.try_iter()?.collect();
                if self.sort_keys {
                    keys.sort(); // Python sorts the keys themselves (9 before 10)
                }
                self.write_container(('{', '}'), keys.len(), level, out, |i, out| {
                    let key = &keys[i];
                    self.write_string(&key_text(key)?, out);
                    out.push_str(&self.key);
                    self.write(&value.get_item(key)?, level + 1, out)
                })?;
            }
            other => {
                return Err(invalid(&format!(
                    "tojson: a {other} cannot be written as JSON"
                )));
            }
        }
        Ok(())
    }

    fn write_container(
        &self,
        (open, close): (char, char),
        len: usize,
        level: usize,
        out: &mut String,
        mut item: impl FnMut(usize, &mut String) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(open);
        if len == 0 {
            out.push(close);
            return Ok(());
        }
        let newline = |out: &mut String, depth: usize| {
            if let Some(indent) = &self.indent {
                out.push('\n');
                (0..depth).for_each(|_| out.push_str(indent));
            }
        };
        for i in 0..len {
            if i > 0 {
                out.push_str(&self.item);
            }
            newline(out, level + 1);
            item(i, out)?;
        }
        newline(out, level);
        out.push(close);
        Ok(())
    }

    fn write_string(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !(' '..='~').contains(&c)) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// A map key as `json.dumps` turns it into a string: strings as they are, numbers as
/// their JSON text, `true` / `false` / `null`; other keys are an error, as in Python.
fn key_text(key: &Value) -> Result<String, Error> {
    Ok(match key.kind() {
        ValueKind::String => key.as_str().unwrap_or_default().to_string(),
        ValueKind::None | ValueKind::Undefined => "null".into(),
        ValueKind::Bool => if key.is_true() { "true" } else { "false" }.into(),
        ValueKind::Number if key.is_integer() => key.to_string(),
        ValueKind::Number => python_float(f64::try_from(key.clone())?),
        other => return Err(invalid(&format!("tojson: a {other} cannot be a JSON key"))),
    })
}

/// A float as Python's `repr` writes it: the shortest digits that read back, in
/// scientific notation below 1e-4 and from 1e16 (`1e-05`, `1e+16`), else positional
/// with at least one decimal (`1.0`).
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let scientific = format!("{f:e}"); // shortest digits, e.g. "1.5e-5"
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let positional = format!("{f}");
        if positional.contains('.') {
            positional
        } else {
            positional + ".0"
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// transformers' `strftime_now(format)`: the current local time (Python's
/// `datetime.now()`, the process's time zone, `TZ` included) formatted.
pub(crate) fn strftime_now(format: String) -> Result<String, Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    strftime_utc(now + local_utc_offset(now), &format).map_err(|e| invalid(&e))
}

/// Seconds the local time zone is ahead of UTC at `unix_seconds` (daylight saving
/// included), from the C library's `localtime_r`; 0 where it cannot tell.
#[cfg(unix)]
fn local_utc_offset(unix_seconds: i64) -> i64 {
    let t = unix_seconds as libc::time_t;
    // SAFETY: `localtime_r` only writes the `tm` it is given (zeroed, so valid) and reads
    // `t`; it is the thread-safe variant, and it reads the time zone (`tzset`) itself.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

#[cfg(not(unix))]
fn local_utc_offset(_unix_seconds: i64) -> i64 {
    0
}

/// transformers' `{% generation %}` ... `{% endgeneration %}` blocks (its extension that
/// marks assistant text for training masks; when rendering a prompt it only renders the
/// body) rewritten as `{% if true %}` ... `{% endif %}`, which minijinja compiles and which
/// render the same text, whitespace control (`{%-`, `-%}`) and trimmed blocks included.
pub(crate) fn generation_blocks_as_plain_blocks(source: &str) -> std::borrow::Cow<'_, str> {
    if !source.contains("generation") {
        return source.into();
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            break;
        };
        let inner = &tag[2..end];
        let (open, body) = match inner.strip_prefix(['-', '+']) {
            Some(b) => (&inner[..1], b),
            None => ("", inner),
        };
        let (body, close) = match body.strip_suffix(['-', '+']) {
            Some(b) => (b, &body[body.len() - 1..]),
            None => (body, ""),
        };
        match body.trim() {
            "generation" => out.push_str(&format!("{{%{open} if true {close}%}}")),
            "endgeneration" => out.push_str(&format!("{{%{open} endif {close}%}}")),
            _ => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out.into()
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Formats `unix_seconds` (UTC) with C `strftime`'s directives as Python applies them in
/// the C locale: `%a %A %b %B %d %e %H %I %j %m %M %p %S %y %Y %%`. Any other directive
/// is an error naming it.
pub fn strftime_utc(unix_seconds: i64, format: &str) -> Result<String, String> {
    let days = unix_seconds.div_euclid(86_400);
    let seconds = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;
    let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let directive = chars
            .next()
            .ok_or("strftime: the format ends with a lone %")?;
        let text = match directive {
            'a' => WEEKDAYS[weekday][..3].to_string(),
            'A' => WEEKDAYS[weekday].to_string(),
            'b' => MONTHS[month as usize - 1][..3].to_string(),
            'B' => MONTHS[month as usize - 1].to_string(),
            'd' => format!("{day:02}"),
            'e' => format!("{day:2}"),
            'H' => format!("{hour:02}"),
            'I' => format!("{:02}", (hour + 11) % 12 + 1),
            'j' => format!("{day_of_year:03}"),
            'm' => format!("{month:02}"),
            'M' => format!("{minute:02}"),
            'p' => if hour < 12 { "AM" } else { "PM" }.to_string(),
            'S' => format!("{second:02}"),
            'y' => format!("{:02}", year.rem_euclid(100)),
            'Y' => year.to_string(),
            '%' => "%".to_string(),
            other => return Err(format!("strftime: %{other} is not supported")),
        };
        out.push_str(&text);
    }
    Ok(out)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A proleptic Gregorian date to days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_day_numbers() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn generation_blocks_become_plain_blocks() {
        let cases = [
            (
                "a{% generation %}b{% endgeneration %}c",
                "a{% if true %}b{% endif %}c",
            ),
            (
                "{%- generation -%}\n{{ x }}{%-endgeneration%}",
                "{%- if true -%}\n{{ x }}{%- endif %}",
            ),
            (
                "{%+ generation +%}{% endgeneration %}",
                "{%+ if true +%}{% endif %}",
            ),
            (
                "{% set generation = 1 %}{{ generation }}",
                "{% set generation = 1 %}{{ generation }}",
            ),
            ("no tags", "no tags"),
            ("{% generation", "{% generation"),
        ];
        for (source, expected) in cases {
            assert_eq!(
                generation_blocks_as_plain_blocks(source),
                expected,
                "{source}"
            );
        }
    }

    #[test]
    fn floats_are_written_as_python_writes_them() {
        for (f, python) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789.25, "123456789.25"),
            (-2.5, "-2.5"),
        ] {
            assert_eq!(python_float(f), python);
        }
    }
}
