// A minimal streaming generator over rill.hpp (greedy).
// Usage: stream MODEL_DIR PROMPT [MAX_NEW_TOKENS]
#include <iostream>
#include <string>

#include "rill.hpp"

int main(int argc, char **argv) {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " MODEL_DIR PROMPT [MAX_NEW_TOKENS]\n";
        return 2;
    }
    try {
        rill::Model model(argv[1]);
        rill::Session session(model);
        rill::GenerationConfig config;
        config.max_new_tokens = argc > 3 ? std::stoul(argv[3]) : 32;
        config.do_sample = false;
        session.set_config(config);
        std::cout << argv[2];
        session.generate(argv[2], [](std::string_view piece) { std::cout << piece << std::flush; });
        std::cout << "\n";
    } catch (const rill::Error &e) {
        std::cerr << "rill: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
