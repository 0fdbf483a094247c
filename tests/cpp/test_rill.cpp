// End-to-end test of bindings/cpp/rill.hpp: the same generations and error paths as
// tests/c/test_rill.c, seen through the C++ wrapper (exceptions with the right status,
// RAII, callables, cancellation from a std::thread). Built with -Wall -Wextra -Werror
// -fsanitize=address,undefined. Prints the greedy line in test_rill.c's format so that
// `make test-cpp` can compare the two.
// Usage: test_rill_cpp MODEL_DIR PLUGIN_PATH

#include "rill.hpp"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

namespace {

int failures = 0;
int checks = 0;

void check(bool ok, int line, const std::string &what) {
    checks++;
    if (!ok) {
        failures++;
        std::cerr << "FAIL " << __FILE__ << ":" << line << ": " << what << "\n";
    }
}
#define CHECK(cond, what) check((cond), __LINE__, (what))

// Runs `body`, which must throw rill::Error with `want`; returns the error's message.
template <class F>
std::string expect_error(int line, const char *expr, rill_status want, F &&body) {
    checks++;
    try {
        body();
    } catch (const rill::Error &e) {
        if (e.status() != want) {
            failures++;
            std::cerr << "FAIL " << __FILE__ << ":" << line << ": " << expr << ": threw " << e.what()
                      << ", want " << rill_status_str(want) << "\n";
        }
        return e.message();
    } catch (const std::exception &e) {
        failures++;
        std::cerr << "FAIL " << __FILE__ << ":" << line << ": " << expr << ": threw non-rill " << e.what() << "\n";
        return "";
    }
    failures++;
    std::cerr << "FAIL " << __FILE__ << ":" << line << ": " << expr << ": no exception, want "
              << rill_status_str(want) << "\n";
    return "";
}
#define EXPECT_ERROR(want, ...) expect_error(__LINE__, #__VA_ARGS__, (want), [&] { __VA_ARGS__; })

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

static_assert(!std::is_copy_constructible_v<rill::Model> && !std::is_copy_assignable_v<rill::Model>);
static_assert(!std::is_copy_constructible_v<rill::Session> && !std::is_copy_assignable_v<rill::Session>);
static_assert(!std::is_copy_constructible_v<rill::Plugin>);
static_assert(std::is_nothrow_move_constructible_v<rill::Model> && std::is_nothrow_move_assignable_v<rill::Session>);
static_assert(std::is_nothrow_copy_constructible_v<rill::Error>);

void test_generate(const rill::Model &model) {
    rill::Session session(model);
    session.set_config(R"({"max_new_tokens": 24, "do_sample": false})");
    std::string text;
    int calls = 0;
    std::size_t n = session.generate("In the beginning God created", [&](std::string_view piece) {
        calls++;
        text += piece;
    });
    CHECK(n > 0 && n <= 24, "generated " + std::to_string(n) + " tokens");
    CHECK(!text.empty() && calls > 0, "callback received text");
    // The line test_rill.c prints; make test-cpp diffs them.
    std::printf("generated %zu tokens: In the beginning God created%s\n", n, text.c_str());

    // The collecting overload: the same text again (greedy).
    CHECK(session.generate("In the beginning God created") == text, "greedy output is repeatable");

    // A callable returning false stops at once.
    int seen = 0;
    n = session.generate("And the king said", [&](std::string_view) { return ++seen < 1; });
    CHECK(seen == 1 && n == 1, "stopped after one piece (calls " + std::to_string(seen) + ")");
    CHECK(session.last_generation().stop_reason == RILL_STOP_CALLBACK, "stop reason callback");

    // The same config from the struct, and JSON escaping of stop strings.
    rill::GenerationConfig config;
    config.max_new_tokens = 24;
    config.do_sample = false;
    config.temperature = 0.7f;
    config.eos_token_id = std::vector<std::uint32_t>{1};
    config.stop_strings = std::vector<std::string>{"\"quoted\\ \n\x01"};
    CHECK(config.to_json() ==
              R"({"max_new_tokens": 24, "do_sample": false, "temperature": 0.7, "eos_token_id": [1], )"
              R"("stop_strings": ["\"quoted\\ \n\u0001"]})",
          "to_json: " + config.to_json());
    session.set_config(config);
    CHECK(session.generate("In the beginning God created") == text, "struct config gives the same greedy text");
    CHECK(rill::GenerationConfig{}.to_json() == "{}", "empty config");

    // Constrained output: the regex sampler from the struct.
    rill::GenerationConfig year;
    year.do_sample = false;
    year.samplers = std::vector<rill::Sampler>{rill::Sampler::regex(" [0-9]{4}\\.")};
    CHECK(year.to_json() ==
              R"({"do_sample": false, "samplers": [{"name": "regex", "params": {"pattern": " [0-9]{4}\\."}, )"
              R"("before_warpers": true}]})",
          "to_json: " + year.to_json());
    session.set_config(year);
    std::string y = session.generate("The year of the flood was");
    bool shaped = y.size() == 6 && y[0] == ' ' && y[5] == '.';
    for (std::size_t i = 1; shaped && i < 5; i++) {
        shaped = y[i] >= '0' && y[i] <= '9';
    }
    CHECK(shaped && session.last_generation().stop_reason == RILL_STOP_EOS, "' dddd.' then EOS: '" + y + "'");
    year.samplers = std::vector<rill::Sampler>{rill::Sampler::json("object")};
    session.set_config(year);
    std::string object = session.generate("def f(x):");
    CHECK(object.find('{') != std::string::npos && session.last_generation().stop_reason == RILL_STOP_EOS &&
              object.back() == '}',
          "a JSON object: '" + object + "'");
    session.set_config(config);

    // Bad configs are exceptions with the status; the old settings stay.
    EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, session.set_config("{not json"));
    EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, session.set_config(R"({"max_new_tokens": -3})"));
    std::string msg = EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, session.set_config(R"({"temperature": 0})"));
    CHECK(contains(msg, "temperature"), "message names the key: " + msg);
    msg = EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, session.set_config(R"({"forced_eos_token_id": 1})"));
    CHECK(contains(msg, "forced_eos_token_id"), "an unimplemented setting is named: " + msg);
    rill::GenerationConfig zero;
    zero.temperature = 0.0f;
    EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, session.set_config(zero));
    CHECK(session.generate("In the beginning God created") == text, "settings unchanged by failed sets");

    // An exception thrown in the callback stops generation and comes out of generate.
    int pieces = 0;
    try {
        session.generate("In the beginning", [&](std::string_view) {
            if (++pieces == 2) {
                throw std::runtime_error("from the callback");
            }
        });
        CHECK(false, "the callback's exception was not rethrown");
    } catch (const rill::Error &e) {
        CHECK(false, std::string("callback exception became rill::Error: ") + e.what());
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()) == "from the callback", "the callback's own exception");
    }
    CHECK(pieces == 2, "no piece after the throw");
    CHECK(session.last_generation().stop_reason == RILL_STOP_CALLBACK, "stopped by the callback");
    CHECK(session.generate("In the beginning God created") == text, "usable after a callback exception");
}

void test_tokenize(const rill::Model &model) {
    const std::string text = "naïve café 🦀 and the earth";
    std::vector<std::uint32_t> ids = model.tokenize(text);
    CHECK(ids.size() > 1 && ids[0] == 0, "BOS first, " + std::to_string(ids.size()) + " ids");
    CHECK(model.detokenize(ids) == text, "round trip");
    // A text longer than the first buffer guess of read_text.
    std::string longer;
    for (int i = 0; i < 40; i++) {
        longer += "and the earth was without form ";
    }
    CHECK(model.detokenize(model.tokenize(longer)) == longer, "long round trip");
    CHECK(model.detokenize(std::vector<std::uint32_t>{}).empty(), "empty text");
    CHECK(model.tokenize("").size() <= 1, "empty prompt: at most BOS");
    EXPECT_ERROR(RILL_ERR_TOKEN_OUT_OF_RANGE, model.detokenize(std::vector<std::uint32_t>{5, 4000000000u}));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, model.tokenize(std::string_view("a\0b", 3)));
}

void test_errors(const rill::Model &model, const char *model_dir) {
    // Missing folder: status and a message naming it.
    std::string msg = EXPECT_ERROR(RILL_ERR_NOT_FOUND, rill::Model("/nonexistent/model"));
    CHECK(contains(msg, "/nonexistent/model"), "message names the folder: " + msg);
    try {
        rill::Model m("/nonexistent/model");
    } catch (const rill::Error &e) {
        CHECK(std::string(e.what()) == std::string("RILL_ERR_NOT_FOUND: ") + e.message(), "what() = name: message");
        CHECK(std::string(e.status_name()) == "RILL_ERR_NOT_FOUND", "status_name");
    }
    rill_model_options mo = rill::Model::default_options();
    mo.struct_size = 3;
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, rill::Model("/nonexistent/model", mo));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, rill::Model(std::string_view("models\0x", 8)));

    // Invalid UTF-8, embedded NUL.
    rill::Session session(model);
    EXPECT_ERROR(RILL_ERR_INVALID_UTF8, session.generate("abc\xff\xfe"));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.generate(std::string_view("ab\0c", 4)));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.set_config(std::string_view("{}\0", 3)));

    // Moved-from owners hold NULL: every call is RILL_ERR_INVALID_ARGUMENT, not a crash.
    rill::Session moved = std::move(session);
    CHECK(session.get() == nullptr && moved.get() != nullptr, "move transfers the handle");
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.generate("x"));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.set_config("{}"));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.cancel());
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.truncate(0));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.token_count());
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.save());
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.append("x"));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.chat("[]"));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.add_sampler("ban_tokens"));
    rill::Model model2(model_dir);
    rill::Model taken = std::move(model2);
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, rill::Session{model2});
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, model2.tokenize("x"));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, model2.detokenize(std::vector<std::uint32_t>{5}));
    session = rill::Session(taken);  // move-assign into a moved-from owner
    session.set_config(R"({"max_new_tokens": 2})");
    CHECK(!session.generate("In the").empty(), "move-assigned session works");

    // A prompt longer than the context, then the same session still works.
    rill_session_options so = rill::Session::default_options();
    so.context_len = 16;
    rill::Session small(model, so);
    msg = EXPECT_ERROR(RILL_ERR_PROMPT_TOO_LONG,
                       small.generate("And the king said unto him, go and do thou likewise, for the day is at "
                                      "hand and the night is far spent"));
    CHECK(contains(msg, "context of 16 tokens"), "message gives the context: " + msg);
    small.set_config(R"({"max_new_tokens": 4})");
    std::size_t n = small.generate("In the", [](std::string_view) {});
    CHECK(n > 0, "session usable after an error");

    so = rill::Session::default_options();
    so.context_len = 1u << 30;
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, rill::Session(model, so));
}

void test_beams(const rill::Model &model) {
    rill::Session session(model);
    rill::GenerationConfig config;
    config.max_new_tokens = 12;
    config.do_sample = false;
    config.num_beams = 4;
    config.num_return_sequences = 3;
    session.set_config(config);
    std::string best = session.generate("In the beginning");
    std::vector<rill::Beam> beams = session.beams();
    CHECK(beams.size() == 3 && session.beam_count() == 3, "three hypotheses");
    float prev = 1.0f;
    for (const rill::Beam &b : beams) {
        CHECK(b.score <= prev && b.score < 0.0f, "scores sorted and negative (" + std::to_string(b.score) + ")");
        prev = b.score;
    }
    CHECK(!beams.empty() && beams[0].text == best, "best hypothesis is what was streamed");
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.beam(3));
    session.set_config(R"({"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 1.0,)"
                       R"( "num_return_sequences": 4, "do_sample": false})");
    session.generate("In the beginning");
    CHECK(session.beam_count() == 4, "four diverse hypotheses");
    EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, session.set_config(R"({"num_beams": 4, "num_beam_groups": 3})"));
    EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, session.set_config(R"({"num_beams": 2, "num_return_sequences": 5})"));
    EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG,
                 session.set_config(R"({"num_beams": 2, "early_stopping": "sometimes"})"));
    session.set_config(R"({"max_new_tokens": 4, "do_sample": false})");
    session.generate("In the beginning");
    CHECK(session.beam_count() == 0 && session.beams().empty(), "no beams after a greedy generation");
}

void test_assistant(const rill::Model &model) {
    const char *greedy = R"({"max_new_tokens": 24, "do_sample": false, "eos_token_id": []})";
    rill::Session plain(model), assisted(model);
    plain.set_config(greedy);
    assisted.set_config(greedy);
    assisted.set_assistant(&model);
    CHECK(assisted.generate("In the beginning") == plain.generate("In the beginning"),
          "assisted generation gives greedy's text");
    assisted.set_config(R"({"num_beams": 2})");
    EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, assisted.generate("In the beginning"));
    assisted.set_assistant(nullptr);
    assisted.generate("In the beginning");
    CHECK(assisted.beam_count() == 1, "a beam search again once the assistant is removed");
    assisted.set_config(R"({"max_new_tokens": 4, "do_sample": false, "eos_token_id": [], "output_logprobs": true})");
    assisted.generate("In the beginning");
    std::vector<float> lps = assisted.last_logprobs();
    CHECK(lps.size() == 4 && lps[0] <= 0.0f, "four token log-probabilities");
}

void test_plugins(const rill::Model &model, const char *plugin_path) {
    std::string msg = EXPECT_ERROR(RILL_ERR_PLUGIN_LOAD, rill::Plugin("/nonexistent/libx.so"));
    CHECK(contains(msg, "/nonexistent/libx.so"), "message names the file: " + msg);
    rill::Plugin plugin(plugin_path);
    CHECK(plugin.get() != nullptr, "plugin loaded");

    rill::Session session(model);
    session.set_config(R"({"max_new_tokens": 8, "do_sample": false, "repetition_penalty": 1.0})");
    std::string plain = session.generate("In the beginning");
    // Ban the first token of the greedy continuation: the output must change.
    std::size_t n_prompt = model.tokenize("In the beginning").size();
    std::vector<std::uint32_t> full = model.tokenize("In the beginning" + plain);
    session.add_sampler("ban_tokens", "{\"tokens\": [" + std::to_string(full.at(n_prompt)) + "]}");
    std::string banned = session.generate("In the beginning");
    CHECK(banned != plain, "the plugin changed the output: '" + banned + "'");

    EXPECT_ERROR(RILL_ERR_UNKNOWN_SAMPLER, session.add_sampler("no_such_sampler"));
    EXPECT_ERROR(RILL_ERR_GENERATION_CONFIG, session.add_sampler("ban_tokens", "{nope"));
    EXPECT_ERROR(RILL_ERR_PLUGIN, session.add_sampler("ban_tokens", "{}"));
    CHECK(session.generate("In the beginning") == banned, "chain unchanged by failed additions");
}

void test_conversation(const rill::Model &model) {
    const char *greedy40 = R"({"max_new_tokens": 40, "do_sample": false, "eos_token_id": []})";
    rill::Session session(model);
    CHECK(session.last_generation().stop_reason == RILL_STOP_NONE, "no generation yet");
    session.set_config(greedy40);
    std::string full = session.generate("In the beginning God created");
    rill_generation_info info = session.last_generation();
    CHECK(info.stop_reason == RILL_STOP_MAX_TOKENS && info.generated_tokens == 40, "max tokens");

    // A stop string from the middle of the text: output ends right before it.
    rill::GenerationConfig config;
    config.max_new_tokens = 40;
    config.do_sample = false;
    config.eos_token_id = std::vector<std::uint32_t>{};
    std::string stop = full.substr(full.size() / 2, 4);
    config.stop_strings = std::vector<std::string>{stop};
    session.set_config(config);
    std::string cut = session.generate("In the beginning God created");
    info = session.last_generation();
    CHECK(info.stop_reason == RILL_STOP_STOP_STRING, "stopped by the stop string");
    CHECK(info.reused_tokens + 1 == info.prompt_tokens && info.evaluated_tokens == 1, "prompt reused");
    CHECK(full.find(stop) == cut.size() && full.compare(0, cut.size(), cut) == 0,
          "text ends before '" + stop + "': '" + cut + "'");

    // Rollback and regenerate.
    session.set_config(greedy40);
    std::size_t count = session.token_count();
    CHECK(session.tokens().size() == count, "tokens() has token_count() ids");
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.truncate(count + 1));
    session.truncate(3);
    CHECK(session.token_count() == 3, "truncated to 3");
    std::vector<std::uint32_t> prompt_ids = model.tokenize("In the beginning God created");
    CHECK(session.tokens() == std::vector<std::uint32_t>(prompt_ids.begin(), prompt_ids.begin() + 3),
          "tokens() after truncate are the prompt's first 3");
    CHECK(session.generate("In the beginning God created") == full, "regenerated text equals the first");
    CHECK(session.last_generation().reused_tokens == 3, "reused 3");

    // A new turn evaluates only its own tokens.
    std::size_t n_ids = model.tokenize(" And").size();
    count = session.token_count();
    session.append(" And");
    info = session.last_generation();
    CHECK(info.reused_tokens == count - 1 && info.evaluated_tokens == n_ids, "append reused the history");

    // Saved state: continue in a new session exactly as without stopping.
    session.set_config(R"({"max_new_tokens": 20, "do_sample": false, "eos_token_id": []})");
    std::string part1 = session.generate("And the king said unto");
    std::vector<std::uint8_t> blob = session.save();
    CHECK(!blob.empty(), "saved " + std::to_string(blob.size()) + " bytes");
    rill::Session restored(model);
    blob[blob.size() / 2] ^= 1;
    std::string msg = EXPECT_ERROR(RILL_ERR_STATE, restored.load(blob));
    CHECK(contains(msg, "checksum"), "corruption named: " + msg);
    blob[blob.size() / 2] ^= 1;
    EXPECT_ERROR(RILL_ERR_STATE, restored.load(blob.data(), blob.size() - 9));
    restored.load(blob);
    CHECK(restored.tokens() == session.tokens(), "restored tokens");
    std::string part2;
    restored.append("", [&](std::string_view piece) { part2 += piece; });
    rill::Session whole(model);
    whole.set_config(greedy40);
    std::string both = whole.generate("And the king said unto");
    CHECK(both == part1 + part2, "saved and continued ('" + part1 + "' + '" + part2 + "') equals '" + both + "'");

    // Chat template.
    const char *msgs = R"([{"role": "user", "content": "Who made the heaven?"}])";
    std::string rendered = model.apply_chat_template(msgs);
    CHECK(contains(rendered, "user: Who made the heaven?") && contains(rendered, "assistant:"), "rendered: " + rendered);
    CHECK(!contains(model.apply_chat_template(msgs, false), "assistant:"), "no generation prompt");
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, model.apply_chat_template(R"({"role": 1})"));
    EXPECT_ERROR(RILL_ERR_INVALID_ARGUMENT, session.chat("not json"));
    std::size_t n = session.chat(msgs, [](std::string_view) { return true; });
    CHECK(session.last_generation().generated_tokens == n, "chat reply counted");

    // Cancel from a std::thread once the first piece arrived.
    session.set_config(R"({"max_new_tokens": 900, "do_sample": false, "eos_token_id": []})");
    std::atomic<bool> started{false};
    std::thread canceller([&] {
        while (!started.load()) {
            std::this_thread::yield();
        }
        session.cancel();
    });
    n = session.generate("The function returns", [&](std::string_view) { started.store(true); });
    canceller.join();
    info = session.last_generation();
    CHECK(info.stop_reason == RILL_STOP_CANCELLED && n < 900, "cancelled after " + std::to_string(n) + " tokens");
    session.set_config(greedy40);
    CHECK(session.generate("In the beginning God created") == full, "usable after a cancel");
}

} // namespace

// Providers: the CPU by default; CUDA where unusable is rill::Error with RILL_ERR_PROVIDER;
// "CUDA, else the CPU" opens on the CPU and says why. The ONNX Runtime path is fixed once
// the library is loaded.
void test_provider(const rill::Model &model, const char *dir) {
    std::int32_t device = -1;
    CHECK(model.provider(&device) == 0 && device == 0, "runs on the CPU");
    CHECK(model.provider_note().empty(), "no fallback note");
    const std::string fused = "/model.gqa.onnx", plain = "/model.onnx";
    const std::string runs = model.graph_file();
    CHECK(runs.size() > fused.size() && runs.compare(runs.size() - fused.size(), fused.size(), fused) == 0,
          "the default model runs its fused graph: " + runs);
    rill_model_options g = rill::Model::default_options();
    g.graph = 1;
    const std::string other = rill::Model(dir, g).graph_file();
    CHECK(other.size() > plain.size() && other.compare(other.size() - plain.size(), plain.size(), plain) == 0,
          "options.graph 1 runs model.onnx: " + other);
    try {
        rill::set_onnxruntime_path("/elsewhere/libonnxruntime.so");
        CHECK(false, "the library path changed after loading");
    } catch (const rill::Error &e) {
        CHECK(e.status() == RILL_ERR_INVALID_ARGUMENT, "path fixed once loaded");
    }
    rill_model_options o = rill::Model::default_options();
    o.provider = 1;
    try {
        rill::Model cuda(dir, o);
        std::printf("CUDA usable here: RILL_ERR_PROVIDER not exercised\n");
        return;
    } catch (const rill::Error &e) {
        CHECK(e.status() == RILL_ERR_PROVIDER, std::string("CUDA unusable: ") + e.what());
    }
    o.provider = 2;
    rill::Model fallback(dir, o);
    CHECK(fallback.provider() == 0, "fell back to the CPU");
    CHECK(contains(fallback.provider_note(), "CUDA not used"), "fallback explained: " + fallback.provider_note());
}

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL_DIR PLUGIN_PATH\n", argv[0]);
        return 2;
    }
    CHECK(rill::status_name(RILL_ERR_WEIGHTS) == "RILL_ERR_WEIGHTS", "status names");
    CHECK(rill::version() == std::to_string(RILL_VERSION_MAJOR) + "." + std::to_string(RILL_VERSION_MINOR) + "." +
                                 std::to_string(RILL_VERSION_PATCH),
          "version matches the header");
    try {
        rill_model_options options = rill::Model::default_options();
        options.intra_threads = 2;
        std::optional<rill::Session> survivor;
        {
            rill::Model model(argv[1], options);
            test_generate(model);
            test_tokenize(model);
            test_errors(model, argv[1]);
            test_plugins(model, argv[2]);
            test_beams(model);
            test_assistant(model);
            test_conversation(model);
            test_provider(model, argv[1]);
            survivor.emplace(model);
        }
        // A session outlives the Model object.
        survivor->set_config(R"({"max_new_tokens": 3})");
        CHECK(survivor->generate("The", [](std::string_view) {}) > 0, "session outlives its Model");
    } catch (const rill::Error &e) {
        std::fprintf(stderr, "FAIL: uncaught %s\n", e.what());
        failures++;
    }
    std::printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
