"""Regenerates tests/reference/fixtures/chat_templates.json: chat templates rendered by
Hugging Face transformers' own renderer (`transformers.utils.chat_template_utils.
render_jinja_template`, the code behind `tokenizer.apply_chat_template`), which
runtime/tests/chat_templates.rs checks rill's rendering against, byte for byte.

The templates are written for this test in the styles of the model families users load
(ChatML, Llama 3 headers, Mistral's [INST], Gemma's turns, Zephyr, Qwen3's thinking and
tool turns), one with a tool-calling turn (content null) and one for content given as a
list of parts with `{% generation %}` blocks, using what real
templates use: whitespace control, trim_blocks/lstrip_blocks-sensitive layout,
`namespace`, loop variables and loop controls, Python string methods, `tojson`,
`raise_exception`, `is defined` guards, special tokens.

    python tests/reference/make_chat_fixtures.py   # needs transformers and jinja2

The fixture records the transformers and jinja2 versions that produced it.
"""
import json
import pathlib
from datetime import datetime, timezone

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

CHATML = """{%- if messages[0]['role'] == 'system' %}
    {%- set system = messages[0]['content'] %}
    {%- set rest = messages[1:] %}
{%- else %}
    {%- set system = 'You are a helpful assistant.' %}
    {%- set rest = messages %}
{%- endif %}
<|im_start|>system
{{ system }}
{%- if tools %}

Tools:
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
{%- endif %}<|im_end|>
{% for message in rest %}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}
{% if add_generation_prompt %}
<|im_start|>assistant
{% endif %}"""

LLAMA3 = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "01 Jan 2025" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

MISTRAL = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

GEMMA = """{{ bos_token }}
{% set ns = namespace(prefix='') %}
{% if messages[0]['role'] == 'system' %}
  {% set ns.prefix = messages[0]['content'] + '\\n\\n' %}
{% endif %}
{% for message in messages %}
  {% if message['role'] == 'system' %}{% continue %}{% endif %}
  {% set role = 'model' if message['role'] == 'assistant' else message['role'] %}
<start_of_turn>{{ role }}
{% if loop.index0 == 1 or (loop.first and message['role'] == 'user') %}{{ ns.prefix }}{% endif %}
{{ message['content'] | trim }}<end_of_turn>
{% endfor %}
{% if add_generation_prompt %}
<start_of_turn>model
{% endif %}"""

ZEPHYR = """{% for message in messages %}
    {% if message['role'] == 'user' %}
        {{ '<|user|>\\n' + message['content'] + eos_token }}
    {% elif message['role'] == 'system' %}
        {{ '<|system|>\\n' + message['content'] + eos_token }}
    {% elif message['role'] == 'assistant' %}
        {{ '<|assistant|>\\n'  + message['content'] + eos_token }}
    {% endif %}
    {% if loop.last and add_generation_prompt %}
        {{ '<|assistant|>' }}
    {% endif %}
{% endfor %}"""

FEATURES = """{%- set users = messages | selectattr('role', 'equalto', 'user') | list %}
{{- 'turns=' ~ (messages | length) ~ ' users=' ~ (users | length) ~ '\\n' }}
{%- for message in messages %}
    {%- if message.content.startswith('STOP') %}{% break %}{% endif %}
    {%- if message.content.strip() == '' %}{% continue %}{% endif %}
    {{- loop.index ~ '/' ~ loop.length ~ ' ' ~ message.role.upper() ~ ': ' }}
    {{- message.content.split('\\n') | join(' | ') }}
    {{- ' ' ~ (message.content | tojson) }}
    {%- if message.name is defined %} from {{ message.name }}{% endif %}
    {%- if message.content.endswith('?') %} (question){% endif %}
    {{- '\\n' }}
{%- endfor %}
{%- set meta = {'bos': bos_token, 'eos': eos_token, 'n': messages | length, 'ok': true, 'none': none} %}
{{- meta | tojson }}
{{- '\\n' ~ (meta | tojson(indent=2)) }}
{{- '\\n' ~ (meta | tojson(sort_keys=true, separators=[',', ':'])) }}
{{- '\\n' ~ ({'text': messages[-1].content, 'list': [1, 2.5, 1e-05, [], {}]} | tojson(ensure_ascii=true, indent=1)) }}
{%- for key, value in meta.items() %}
{{ key }}={{ value }}
{%- endfor %}
{%- if tools is none and documents is none %}
no tools
{% endif %}
{%- if add_generation_prompt %}ASSISTANT:{% endif %}"""

TOOLS = """{%- for message in messages %}
{%- if message.tool_calls is defined %}
{%- for call in message.tool_calls %}
<call>{{ call.function.name }} {{ call.function.arguments | tojson }}</call>
{{ call.function.arguments | tojson(sort_keys=true, ensure_ascii=true) }}
{%- endfor %}
{{ message.content }}
{%- else %}
{{ message.role }}: {{ message.content }}
{%- endif %}
{%- endfor %}
{{ {10: 'ten', 9: 'nine'} | tojson(sort_keys=true) }}
{{ {'whole': 1.0, 'negative zero': -0.0, 'big': 1e16, 'small': 2.5e-07, 'int': 7} | tojson }}
{{ '\u007f<&>' | tojson(ensure_ascii=true) }}
{%- if add_generation_prompt %}
assistant:{% endif %}"""

RAG = """{%- if documents %}
Documents:
{%- for doc in documents %}
[{{ loop.index }}] {{ doc.title }}: {{ doc.text }}
{%- endfor %}
{% endif %}
{%- for message in messages %}{{ message.role }}: {{ message.content }}
{% endfor %}
{%- if add_generation_prompt %}assistant:{% endif %}
{%- if enable_thinking is defined and not enable_thinking %} <think></think>{% endif %}"""

QWEN3 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\nYou may call one or more functions.\\n\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""

# Content as a list of parts (Gemma 3's and vision models' style) and transformers'
# `{% generation %}` blocks around the assistant's text.
PARTS = """{{ bos_token }}
{%- for message in messages %}
<turn {{ message.role }}>
{%- if message.content is string %}
{{ message.content | trim }}
{%- elif message.content is iterable %}
{%- for item in message.content %}
{%- if item.type == 'image' %}<image>{% elif item.type == 'text' %}{{ item.text | trim }}{% endif %}
{%- endfor %}
{%- else %}
{{ raise_exception("Invalid content type") }}
{%- endif %}
{% if message.role == 'assistant' %}
{%- generation %}
[{{ message.content if message.content is string else message.content | map(attribute='text') | join(' ') }}]
{%- endgeneration %}
{% endif %}
</turn>
{% endfor %}
{%- if add_generation_prompt %}<turn assistant>
{% endif %}"""

TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3, "mistral": MISTRAL, "gemma": GEMMA,
             "zephyr": ZEPHYR, "features": FEATURES, "tools": TOOLS, "rag": RAG, "qwen3": QWEN3,
             "parts": PARTS}

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello!"}],
    "system_user": [{"role": "system", "content": "  Be brief.  "},
                    {"role": "user", "content": "What is a river?"}],
    "multi_turn": [{"role": "system", "content": "You answer in French."},
                   {"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Bonjour !"},
                   {"role": "user", "content": "Line one\nline two, \"quoted\" — ünïcode ✓?"}],
    "no_system_turns": [{"role": "user", "content": "  padded  "},
                        {"role": "assistant", "content": "ok"},
                        {"role": "user", "content": "STOP here"},
                        {"role": "assistant", "content": "never shown by features"}],
    "bad_alternation": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    "named": [{"role": "user", "content": "Hi", "name": "ann"},
              {"role": "assistant", "content": "Hello ann", "name": "bot"}],
    "tool_call": [{"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"type": "function", "function": {"name": "weather", "arguments": {
                          "city": "Paris", "days": 3, "units": "celsius", "detail": 0.5,
                          "flags": [True, None], "z": {"b": 1, "a": 2}}}}]}],
    "prefill": [{"role": "user", "content": "Give me JSON"},
                {"role": "assistant", "content": "Sure: {\"a\":"}],
    "prefill_space": [{"role": "system", "content": "Answer briefly."},
                      {"role": "user", "content": "Six times seven?"},
                      {"role": "assistant", "content": "The answer is "}],
    "blank": [{"role": "user", "content": "   "}, {"role": "user", "content": "<tag> & 'x'"}],
    "thinking": [{"role": "user", "content": "Capital of France?"},
                 {"role": "assistant", "content": "<think>\nIt is Paris.\n</think>\n\nParis."},
                 {"role": "user", "content": "And of Italy?"}],
    "tool_round": [{"role": "system", "content": "You check the weather."},
                   {"role": "user", "content": "Weather in Paris?"},
                   {"role": "assistant", "content": "", "tool_calls": [
                       {"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}},
                       {"type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Lyon\"}"}}]},
                   {"role": "tool", "content": "{\"temp\": 21}"},
                   {"role": "tool", "content": "{\"temp\": 19}"},
                   {"role": "assistant", "content": "<think>\nBoth mild.\n</think>\n\n21 and 19 degrees."}],
    "parts": [{"role": "system", "content": [{"type": "text", "text": " Be brief. "}]},
              {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
              {"role": "assistant", "content": [{"type": "text", "text": "A river."}]},
              {"role": "user", "content": "And this?"}],
    "prefill_parts": [{"role": "user", "content": [{"type": "text", "text": "Count"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "One,"},
                                                        {"type": "text", "text": "two, "}]}],
}

# Conversations whose content is not always a string, and the templates written for them
# (the others read every content as text).
NOT_ONLY_TEXT = {"tool_call": {"tools", "qwen3"}, "tool_round": {"qwen3"},
                 "parts": {"parts"}, "prefill_parts": {"parts"}}

TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}

WEATHER = {"type": "function", "function": {
    "name": "weather", "description": "Today's weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
SEARCH = {"type": "function", "function": {"name": "search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}}
DOCUMENTS = [{"title": "Rivers", "text": "A river flows to the sea."},
             {"title": "Lakes", "text": "A lake is still \"water\"."}]

# apply_chat_template's other arguments: (template, conversation, tools, documents,
# template variables).
REQUESTS = [
    ("chatml", "user", [WEATHER, SEARCH], None, {}),
    ("chatml", "system_user", [WEATHER], None, {}),
    ("tools", "tool_call", [WEATHER], None, {}),
    ("llama3", "system_user", None, None, {"date_string": "05 Mar 2026"}),
    ("llama3", "user", None, None, {"bos_token": "<BOS>"}),
    ("rag", "user", None, DOCUMENTS, {"enable_thinking": False}),
    ("rag", "multi_turn", None, None, {"enable_thinking": True}),
    # continue_final_message (an argument of apply_chat_template, not a variable): the text
    # ends inside the final assistant message, its trailing spaces kept where the
    # template keeps them.
    ("chatml", "prefill", None, None, {"continue_final_message": True}),
    ("chatml", "prefill_space", None, None, {"continue_final_message": True}),
    ("llama3", "prefill_space", None, None, {"continue_final_message": True}),
    ("zephyr", "prefill", None, None, {"continue_final_message": True}),
    ("mistral", "prefill_space", None, None, {"continue_final_message": True}),
    ("parts", "prefill_parts", None, None, {"continue_final_message": True}),
    ("qwen3", "user", [WEATHER, SEARCH], None, {}),
    ("qwen3", "tool_round", [WEATHER], None, {"enable_thinking": False}),
    ("qwen3", "thinking", None, None, {"enable_thinking": False}),
]


def main():
    cases = []
    for name, source in TEMPLATES.items():
        for conv_name, messages in CONVERSATIONS.items():
            if name not in NOT_ONLY_TEXT.get(conv_name, {name}):
                continue
            for add_generation_prompt in (False, True):
                case = {"template": name, "messages": conv_name,
                        "add_generation_prompt": add_generation_prompt}
                try:
                    rendered, _ = render_jinja_template(
                        [messages], chat_template=source,
                        add_generation_prompt=add_generation_prompt, **TOKENS)
                    case["expected"] = rendered[0]
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    requests = []
    for name, conv_name, tools, documents, variables in REQUESTS:
        continues = variables.get("continue_final_message", False)
        for add_generation_prompt in (False,) if continues else (False, True):
            rendered, _ = render_jinja_template(
                [CONVERSATIONS[conv_name]], tools=tools, documents=documents,
                chat_template=TEMPLATES[name], add_generation_prompt=add_generation_prompt,
                **{**TOKENS, **variables})
            requests.append({"template": name, "messages": conv_name, "tools": tools,
                             "documents": documents, "variables": variables,
                             "add_generation_prompt": add_generation_prompt,
                             "expected": rendered[0]})
    moments = [0, 951782400, 1732406400, 1790000000, 4102444799]
    formats = ["%d %b %Y", "%Y-%m-%d %H:%M:%S", "%A %d %B %y", "%a %b %e %j %%"]
    strftime = [{"timestamp": t, "format": f,
                 "expected": datetime.fromtimestamp(t, timezone.utc).strftime(f)}
                for t in moments for f in formats]
    out = {
        "generator": "tests/reference/make_chat_fixtures.py",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "bos_token": TOKENS["bos_token"],
        "eos_token": TOKENS["eos_token"],
        "templates": TEMPLATES,
        "conversations": CONVERSATIONS,
        "cases": cases,
        "requests": requests,
        "strftime": strftime,
    }
    path = pathlib.Path(__file__).parent / "fixtures" / "chat_templates.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {len(cases)} renders, {sum('error' in c for c in cases)} errors, "
          f"{len(requests)} renders with tools, documents or variables")


if __name__ == "__main__":
    main()
