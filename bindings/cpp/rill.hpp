/*
 * rill.hpp: header-only C++17 wrapper over rill.h. Hand-written.
 *
 * Owners (rill::Model, rill::Session, rill::Plugin) are move-only and free their handle
 * once; a failing call throws rill::Error carrying the rill_status and the message of
 * rill_last_error(). Strings go in as std::string_view (copied to add the NUL; an
 * embedded NUL is RILL_ERR_INVALID_ARGUMENT) and come out as std::string. Nothing here
 * decides anything the C ABI does not: every method is one C call (or the two calls of
 * the C ABI's buffer pattern).
 *
 * Sample usage:
 *
 *     rill::Model model("models/rill-tiny");
 *     rill::Session session(model);
 *     session.set_config(R"({"max_new_tokens": 32})");
 *     session.generate("In the beginning", [](std::string_view piece) {
 *         std::cout << piece << std::flush;
 *     });
 *
 * Callbacks are any callable taking std::string_view and returning void (go on) or bool
 * (false stops generation, RILL_STOP_CALLBACK). An exception thrown by the callback never
 * crosses the C ABI: it is caught, generation stops, and it is rethrown from the call that
 * generated, after rill has returned (the session stays usable and holds the text
 * streamed so far).
 *
 * Threads: as in rill.h. A Model may be used from any thread; a Session from one thread
 * at a time, except Session::cancel(), which may be called from another thread while the
 * session generates (the Session must not be destroyed meanwhile). rill::Error::what()
 * is "RILL_ERR_NAME: message".
 */

#ifndef RILL_HPP
#define RILL_HPP

#ifndef __cplusplus
#error "rill.hpp is C++17; from C include rill.h"
#endif
#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "rill.hpp needs C++17 or later"
#endif

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rill.h"

namespace rill {

// ---------------------------------------------------------------------------------------
// Errors

/// A failed rill call: the status and rill_last_error()'s message of the failing thread.
/// Copying never throws (one shared string, as std::runtime_error keeps it).
class Error : public std::runtime_error {
public:
    Error(rill_status status, std::string_view message)
        : std::runtime_error(compose(status, message)), status_(status),
          prefix_len_(std::char_traits<char>::length(rill_status_str(status)) + 2) {}

    /// The status the C call returned (never RILL_OK).
    rill_status status() const noexcept { return status_; }
    /// Its static name, e.g. "RILL_ERR_NOT_FOUND".
    const char *status_name() const noexcept { return rill_status_str(status_); }
    /// The message alone, without the status name.
    const char *message() const noexcept { return what() + prefix_len_; }

private:
    static std::string compose(rill_status status, std::string_view message) {
        std::string out = rill_status_str(status);
        out += ": ";
        out += message;
        return out;
    }
    rill_status status_;
    std::size_t prefix_len_;
};

namespace detail {

/// Throws rill::Error for a status other than RILL_OK, with this thread's message.
inline void check(rill_status status) {
    if (status != RILL_OK) {
        throw Error(status, rill_last_error());
    }
}

/// A NUL-terminated copy of a string_view; an embedded NUL would silently cut the text
/// short on the C side, so it is refused.
inline std::string c_string(std::string_view text, const char *what) {
    if (text.find('\0') != std::string_view::npos) {
        throw Error(RILL_ERR_INVALID_ARGUMENT, std::string(what) + " contains a NUL byte");
    }
    return std::string(text);
}

/// The C ABI's buffer pattern for text: `call(buf, capacity, &needed)` with `needed`
/// counting the NUL. Tries a small buffer first, then exactly the size asked for.
template <class Call>
std::string read_text(Call &&call) {
    std::string out(256, '\0');
    std::size_t needed = 0;
    rill_status status = call(out.data(), out.size(), &needed);
    if (status == RILL_ERR_BUFFER_TOO_SMALL) {
        out.assign(needed, '\0');
        status = call(out.data(), out.size(), &needed);
    }
    check(status);
    out.resize(needed > 0 ? needed - 1 : 0);
    return out;
}

/// The buffer pattern for arrays (`needed` is an element count): size query, then fill.
template <class T, class Call>
std::vector<T> read_array(Call &&call, std::size_t guess) {
    std::vector<T> out(guess);
    std::size_t needed = 0;
    rill_status status = call(out.empty() ? nullptr : out.data(), out.size(), &needed);
    if (status == RILL_ERR_BUFFER_TOO_SMALL) {
        out.resize(needed);
        status = call(out.data(), out.size(), &needed);
    }
    check(status);
    out.resize(needed);
    return out;
}

/// Carries a C++ callable through rill_token_callback's `void *user_data`. Exceptions
/// are caught here (nothing unwinds through rill) and rethrown by `rethrow()` once the C
/// call has returned.
template <class F>
class Trampoline {
public:
    explicit Trampoline(F &f) : f_(f) {}

    static int call(void *user, const char *piece, std::size_t len) noexcept {
        auto *self = static_cast<Trampoline *>(user);
        try {
            std::string_view text(piece, len);
            if constexpr (std::is_void_v<std::invoke_result_t<F &, std::string_view>>) {
                std::invoke(self->f_, text);
                return 0;
            } else {
                return static_cast<bool>(std::invoke(self->f_, text)) ? 0 : 1;
            }
        } catch (...) {
            self->error_ = std::current_exception();
            return 1;
        }
    }

    /// After the C call: the callback's exception first, else the call's status.
    void finish(rill_status status) {
        if (error_) {
            std::rethrow_exception(error_);
        }
        check(status);
    }

private:
    F &f_;
    std::exception_ptr error_;
};

template <class F>
using is_piece_callback = std::is_invocable<F &, std::string_view>;

/// Shortest round-trip, locale-independent text of a number, for JSON.
template <class T>
void append_number(std::string &out, T value) {
    char buf[64];
    auto result = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, result.ptr);
}

inline void append_json_string(std::string &out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += ch;
            }
        }
    }
    out += '"';
}

struct ModelDeleter {
    void operator()(const rill_model *m) const noexcept { rill_model_free(m); }
};
struct SessionDeleter {
    void operator()(rill_session *s) const noexcept { rill_session_free(s); }
};
struct PluginDeleter {
    void operator()(const rill_plugin *p) const noexcept { rill_plugin_free(p); }
};

} // namespace detail

using model_ptr = std::unique_ptr<const rill_model, detail::ModelDeleter>;
using session_ptr = std::unique_ptr<rill_session, detail::SessionDeleter>;
using plugin_ptr = std::unique_ptr<const rill_plugin, detail::PluginDeleter>;

/// The library version, e.g. "0.1.0".
inline std::string_view version() noexcept { return rill_version(); }

/// The static name of a status, e.g. "RILL_ERR_WEIGHTS".
inline std::string_view status_name(rill_status status) noexcept { return rill_status_str(status); }

/// Loads ONNX Runtime from `path` (call before opening the first model): for applications
/// that ship the library in their own bundle. rill_set_onnxruntime_path.
inline void set_onnxruntime_path(std::string_view path) {
    std::string c = detail::c_string(path, "path");
    detail::check(rill_set_onnxruntime_path(c.c_str()));
}

// ---------------------------------------------------------------------------------------
// Generation settings

/// A custom sampler entry of a generation config (`samplers`): a registered sampler's
/// name, its JSON parameters, a plugin library to load first (empty: none) and whether
/// it runs before the sampling warpers (where a constraint belongs).
struct Sampler {
    std::string name;
    std::string params_json = "{}";
    std::string plugin;
    bool before_warpers = false;

    /// The standard `regex` sampler: the generated text stays a prefix of a full match of
    /// `pattern` (Rust regex syntax) and ends on one.
    static Sampler regex(std::string_view pattern) {
        std::string params = "{\"pattern\": ";
        detail::append_json_string(params, pattern);
        params += '}';
        return Sampler{"regex", params, "", true};
    }

    /// The standard `json` sampler: the generated text is one JSON value (`top`:
    /// "object" for an object, "any" for any value) and ends when it is complete.
    static Sampler json(std::string_view top = "any") {
        std::string params = "{\"top\": ";
        detail::append_json_string(params, top);
        params += '}';
        return Sampler{"json", params, "", true};
    }
};

/// The common generation config keys (Hugging Face `generation_config.json` names and
/// meanings); unset fields are left out of the JSON, so the model folder's values or
/// rill's defaults apply. Anything else: Session::set_config(json).
struct GenerationConfig {
    std::optional<std::uint32_t> max_new_tokens;
    /// No end-of-sequence before this many new tokens.
    std::optional<std::uint32_t> min_new_tokens;
    /// Prompt lookup decoding: up to this many tokens guessed from the context and checked
    /// in one forward pass; the same output, in fewer passes.
    std::optional<std::uint32_t> prompt_lookup_num_tokens;
    std::optional<bool> do_sample;
    std::optional<float> temperature;
    std::optional<std::uint32_t> top_k;
    std::optional<float> top_p;
    std::optional<float> min_p;
    std::optional<float> typical_p;
    std::optional<float> repetition_penalty;
    std::optional<std::uint32_t> no_repeat_ngram_size;
    std::optional<float> presence_penalty;
    std::optional<float> frequency_penalty;
    std::optional<std::uint64_t> seed;
    std::optional<std::uint32_t> num_beams;
    std::optional<std::uint32_t> num_return_sequences;
    std::optional<float> length_penalty;
    /// End-of-sequence ids; an empty list disables stopping at end-of-sequence.
    std::optional<std::vector<std::uint32_t>> eos_token_id;
    /// Strings that end generation (not emitted).
    std::optional<std::vector<std::string>> stop_strings;
    /// Custom samplers (Sampler::regex, Sampler::json, a plugin's).
    std::optional<std::vector<Sampler>> samplers;

    /// The JSON object rill_session_set_generation_config reads.
    std::string to_json() const {
        std::string out = "{";
        auto key = [&out](const char *name) {
            if (out.size() > 1) {
                out += ", ";
            }
            out += '"';
            out += name;
            out += "\": ";
        };
        auto number = [&](const char *name, const auto &value) {
            if (value) {
                key(name);
                detail::append_number(out, *value);
            }
        };
        number("max_new_tokens", max_new_tokens);
        number("min_new_tokens", min_new_tokens);
        number("prompt_lookup_num_tokens", prompt_lookup_num_tokens);
        if (do_sample) {
            key("do_sample");
            out += *do_sample ? "true" : "false";
        }
        number("temperature", temperature);
        number("top_k", top_k);
        number("top_p", top_p);
        number("min_p", min_p);
        number("typical_p", typical_p);
        number("repetition_penalty", repetition_penalty);
        number("no_repeat_ngram_size", no_repeat_ngram_size);
        number("presence_penalty", presence_penalty);
        number("frequency_penalty", frequency_penalty);
        number("seed", seed);
        number("num_beams", num_beams);
        number("num_return_sequences", num_return_sequences);
        number("length_penalty", length_penalty);
        if (eos_token_id) {
            key("eos_token_id");
            out += '[';
            for (std::size_t i = 0; i < eos_token_id->size(); i++) {
                out += i ? ", " : "";
                detail::append_number(out, (*eos_token_id)[i]);
            }
            out += ']';
        }
        if (stop_strings) {
            key("stop_strings");
            out += '[';
            for (std::size_t i = 0; i < stop_strings->size(); i++) {
                out += i ? ", " : "";
                detail::append_json_string(out, (*stop_strings)[i]);
            }
            out += ']';
        }
        if (samplers) {
            key("samplers");
            out += '[';
            for (std::size_t i = 0; i < samplers->size(); i++) {
                const Sampler &sampler = (*samplers)[i];
                out += i ? ", {\"name\": " : "{\"name\": ";
                detail::append_json_string(out, sampler.name);
                out += ", \"params\": ";
                out += sampler.params_json.empty() ? "{}" : sampler.params_json;
                if (!sampler.plugin.empty()) {
                    out += ", \"plugin\": ";
                    detail::append_json_string(out, sampler.plugin);
                }
                out += sampler.before_warpers ? ", \"before_warpers\": true}" : "}";
            }
            out += ']';
        }
        out += '}';
        return out;
    }
};

/// One hypothesis of a beam search: generated text and score.
struct Beam {
    std::string text;
    float score;
};

// ---------------------------------------------------------------------------------------
// Model

/// An opened model folder (rill_model_open / rill_model_free). Move-only; sessions keep
/// the underlying model alive, so a Model may be destroyed before its sessions.
class Model {
public:
    /// rill_model_options_default().
    static rill_model_options default_options() noexcept { return rill_model_options_default(); }

    /// Opens the folder at `path` with the default options.
    explicit Model(std::string_view path) { open(path, nullptr); }
    /// Opens the folder at `path` with `options` (start from default_options()).
    Model(std::string_view path, const rill_model_options &options) { open(path, &options); }

    /// The C handle (NULL after a move); still owned by this object.
    const rill_model *get() const noexcept { return handle_.get(); }

    /// Token ids of `text`, special tokens included (BOS for Llama models).
    std::vector<std::uint32_t> tokenize(std::string_view text) const {
        std::string c = detail::c_string(text, "text");
        return detail::read_array<std::uint32_t>(
            [&](std::uint32_t *ids, std::size_t cap, std::size_t *n) {
                return rill_tokenize(handle_.get(), c.c_str(), ids, cap, n);
            },
            text.size() + 8);
    }

    /// The text of `n` token ids (special tokens dropped).
    std::string detokenize(const std::uint32_t *ids, std::size_t n) const {
        return detail::read_text([&](char *buf, std::size_t cap, std::size_t *needed) {
            return rill_detokenize(handle_.get(), ids, n, buf, cap, needed);
        });
    }
    std::string detokenize(const std::vector<std::uint32_t> &ids) const {
        return detokenize(ids.data(), ids.size());
    }

    /// `messages_json` (a JSON array of {"role", "content"}) rendered by the model's chat
    /// template, ending where the assistant's reply begins if `add_generation_prompt`.
    std::string apply_chat_template(std::string_view messages_json, bool add_generation_prompt = true) const {
        std::string c = detail::c_string(messages_json, "messages_json");
        return detail::read_text([&](char *buf, std::size_t cap, std::size_t *needed) {
            return rill_model_apply_chat_template(handle_.get(), c.c_str(), add_generation_prompt ? 1 : 0,
                                                  buf, cap, needed);
        });
    }

    /// Where the graph runs: 0 the CPU, 1 CUDA (the device in `*device` when given).
    std::uint32_t provider(std::int32_t *device = nullptr) const {
        std::uint32_t p = 0;
        detail::check(rill_model_provider(handle_.get(), &p, device));
        return p;
    }

    /// Why CUDA was not used although options.provider 2 preferred it ("" otherwise).
    std::string provider_note() const {
        return detail::read_text([&](char *buf, std::size_t cap, std::size_t *needed) {
            return rill_model_provider_note(handle_.get(), buf, cap, needed);
        });
    }

    /// The path of the graph file the model runs: model.onnx, or the fused-attention
    /// model.gqa.onnx beside it (options.graph).
    std::string graph_file() const {
        return detail::read_text([&](char *buf, std::size_t cap, std::size_t *needed) {
            return rill_model_graph_file(handle_.get(), buf, cap, needed);
        });
    }

private:
    void open(std::string_view path, const rill_model_options *options) {
        std::string c = detail::c_string(path, "path");
        const rill_model *model = nullptr;
        detail::check(rill_model_open(c.c_str(), options, &model));
        handle_.reset(model);
    }

    model_ptr handle_;
};

// ---------------------------------------------------------------------------------------
// Plugin

/// A loaded sampler plugin (rill_plugin_load / rill_plugin_free). Its samplers stay
/// registered for the whole process after the handle is gone.
class Plugin {
public:
    explicit Plugin(std::string_view path) {
        std::string c = detail::c_string(path, "path");
        const rill_plugin *plugin = nullptr;
        detail::check(rill_plugin_load(c.c_str(), &plugin));
        handle_.reset(plugin);
    }

    /// Registers a plugin linked into the application from its entry function
    /// (rill_plugin_register), for platforms that forbid loading code at run time.
    static Plugin from_entry(rill_plugin_entry_fn entry) {
        const rill_plugin *plugin = nullptr;
        detail::check(rill_plugin_register(entry, &plugin));
        return Plugin(plugin);
    }

    const rill_plugin *get() const noexcept { return handle_.get(); }

private:
    explicit Plugin(const rill_plugin *plugin) noexcept { handle_.reset(plugin); }

    plugin_ptr handle_;
};

// ---------------------------------------------------------------------------------------
// Session

/// One conversation over a model (rill_session_new / rill_session_free). Move-only.
class Session {
public:
    /// rill_session_options_default().
    static rill_session_options default_options() noexcept { return rill_session_options_default(); }

    explicit Session(const Model &model) { create(model, nullptr); }
    Session(const Model &model, const rill_session_options &options) { create(model, &options); }

    /// The C handle (NULL after a move); still owned by this object.
    rill_session *get() const noexcept { return handle_.get(); }

    /// Replaces the session's generation settings (JSON, generation_config.json keys).
    void set_config(std::string_view json) {
        std::string c = detail::c_string(json, "generation config");
        detail::check(rill_session_set_generation_config(handle_.get(), c.c_str()));
    }
    void set_config(const GenerationConfig &config) { set_config(config.to_json()); }

    /// Generates a continuation of `prompt` (the whole conversation; BOS is added),
    /// streaming pieces to `on_piece`; returns the number of generated tokens.
    template <class F, class = std::enable_if_t<detail::is_piece_callback<F>::value>>
    std::size_t generate(std::string_view prompt, F &&on_piece) {
        return run(rill_session_generate, prompt, "prompt", on_piece);
    }
    /// The same, returning the generated text.
    std::string generate(std::string_view prompt) {
        return collect(rill_session_generate, prompt, "prompt");
    }

    /// Adds `text` (no BOS) after the session's tokens and generates from there.
    template <class F, class = std::enable_if_t<detail::is_piece_callback<F>::value>>
    std::size_t append(std::string_view text, F &&on_piece) {
        return run(rill_session_append, text, "text", on_piece);
    }
    std::string append(std::string_view text) { return collect(rill_session_append, text, "text"); }

    /// Renders `messages_json` (an array of messages, or an object with `messages`,
    /// `tools`, `documents` and template variables) with the chat template and generates
    /// the reply.
    template <class F, class = std::enable_if_t<detail::is_piece_callback<F>::value>>
    std::size_t chat(std::string_view messages_json, F &&on_piece) {
        return run(rill_session_chat, messages_json, "messages_json", on_piece);
    }
    std::string chat(std::string_view messages_json) {
        return collect(rill_session_chat, messages_json, "messages_json");
    }

    /// Stops the generation in progress after its current forward pass. Callable from
    /// any thread while another generates (not while the Session is being destroyed).
    void cancel() const { detail::check(rill_session_cancel(handle_.get())); }

    /// Rolls the conversation back to its first `n_tokens` tokens.
    void truncate(std::size_t n_tokens) { detail::check(rill_session_truncate(handle_.get(), n_tokens)); }

    /// The number of tokens the session holds.
    std::size_t token_count() const {
        std::size_t n = 0;
        detail::check(rill_session_token_count(handle_.get(), &n));
        return n;
    }

    /// The session's token ids.
    std::vector<std::uint32_t> tokens() const {
        rill_session *s = handle_.get();
        return detail::read_array<std::uint32_t>(
            [s](std::uint32_t *ids, std::size_t cap, std::size_t *n) { return rill_session_tokens(s, ids, cap, n); },
            0);
    }

    /// The last generation's token log-probabilities (with "output_logprobs": true).
    std::vector<float> last_logprobs() const {
        rill_session *s = handle_.get();
        return detail::read_array<float>(
            [s](float *out, std::size_t cap, std::size_t *n) { return rill_session_last_logprobs(s, out, cap, n); },
            0);
    }

    /// A summary of the last generation (stop reason, token counts, prefix reuse).
    rill_generation_info last_generation() const {
        rill_generation_info info{};
        info.struct_size = sizeof info;
        detail::check(rill_session_last_generation(handle_.get(), &info));
        return info;
    }

    /// The session's tokens, cache and settings as a versioned, checksummed blob.
    std::vector<std::uint8_t> save() const {
        rill_session *s = handle_.get();
        return detail::read_array<std::uint8_t>(
            [s](std::uint8_t *buf, std::size_t cap, std::size_t *needed) {
                return rill_session_save(s, buf, cap, needed);
            },
            0);
    }

    /// Restores a blob from save(); RILL_ERR_STATE (session unchanged) if it is corrupt,
    /// truncated or from another model.
    void load(const std::uint8_t *data, std::size_t len) {
        detail::check(rill_session_load(handle_.get(), data, len));
    }
    void load(const std::vector<std::uint8_t> &blob) { load(blob.data(), blob.size()); }

    /// Adds the sampler `name` (from a plugin or built in) with JSON parameters.
    void add_sampler(std::string_view name, std::string_view params_json = "{}") {
        std::string n = detail::c_string(name, "sampler name");
        std::string p = detail::c_string(params_json, "params_json");
        detail::check(rill_session_add_sampler(handle_.get(), n.c_str(), p.c_str()));
    }

    /// Sets (nullptr: removes) the assistant model of assisted generation: it proposes
    /// the next tokens, this session's model checks them in one pass; same output.
    void set_assistant(const Model *assistant) {
        detail::check(rill_session_set_assistant(handle_.get(), assistant ? assistant->get() : nullptr));
    }

    /// How many hypotheses the last beam search returned (0 after other generations).
    std::size_t beam_count() const {
        std::size_t n = 0;
        detail::check(rill_session_beam_count(handle_.get(), &n));
        return n;
    }

    /// Hypothesis `index` (0 is the best) of the last beam search.
    Beam beam(std::size_t index) const {
        float score = 0.0f;
        rill_session *s = handle_.get();
        std::string text = detail::read_text([&](char *buf, std::size_t cap, std::size_t *needed) {
            return rill_session_beam_result(s, index, buf, cap, needed, &score);
        });
        return Beam{std::move(text), score};
    }

    /// All hypotheses of the last beam search, best first.
    std::vector<Beam> beams() const {
        std::vector<Beam> out;
        std::size_t n = beam_count();
        out.reserve(n);
        for (std::size_t i = 0; i < n; i++) {
            out.push_back(beam(i));
        }
        return out;
    }

private:
    using generate_fn = rill_status (*)(rill_session *, const char *, rill_token_callback, void *, std::size_t *);

    void create(const Model &model, const rill_session_options *options) {
        rill_session *session = nullptr;
        detail::check(rill_session_new(model.get(), options, &session));
        handle_.reset(session);
    }

    template <class F>
    std::size_t run(generate_fn fn, std::string_view text, const char *what, F &on_piece) {
        std::string c = detail::c_string(text, what);
        detail::Trampoline<F> trampoline(on_piece);
        std::size_t n = 0;
        rill_status status = fn(handle_.get(), c.c_str(), &detail::Trampoline<F>::call, &trampoline, &n);
        trampoline.finish(status);
        return n;
    }

    std::string collect(generate_fn fn, std::string_view text, const char *what) {
        std::string out;
        auto append_piece = [&out](std::string_view piece) { out += piece; };
        run(fn, text, what, append_piece);
        return out;
    }

    session_ptr handle_;
};

} // namespace rill

#endif // RILL_HPP
