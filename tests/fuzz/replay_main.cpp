// Replays a fuzz target's corpus without libFuzzer, so the seeds run under ctest with gcc.
// Usage: <target> PATH...  where each PATH is a file or a directory of files (not recursive).
// Exits non-zero when a path is missing or a directory holds no files; a failing input
// aborts inside the target, as it would under libFuzzer.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

// The input being run, named by the crash handler so a failing seed is easy to find.
char current_input[4096];

extern "C" void report_crash(int signal_number) {
    constexpr char kPrefix[] = "replay: crashed on ";
    (void)!::write(STDERR_FILENO, kPrefix, sizeof kPrefix - 1);
    (void)!::write(STDERR_FILENO, current_input, std::strlen(current_input));
    (void)!::write(STDERR_FILENO, "\n", 1);
    ::signal(signal_number, SIG_DFL);
    ::raise(signal_number);
}

void name_crashes() {
    for (const int signal_number : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
        ::signal(signal_number, report_crash);
    }
}

bool run_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
        return false;
    }
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    std::snprintf(current_input, sizeof current_input, "%s", path.c_str());
    // A copy of exactly the input's size, so a read past its end is visible to ASan.
    const std::vector<std::uint8_t> input(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(input.empty() ? nullptr : input.data(), input.size());
    return true;
}

// The regular files directly inside `dir`, in a stable order.
std::vector<fs::path> files_in(const fs::path& dir, std::error_code& error) {
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
        if (it->is_regular_file()) files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    name_crashes();
    std::size_t ran = 0;
    for (int i = 1; i < argc; ++i) {
        const fs::path path = argv[i];
        std::error_code error;
        if (fs::is_directory(path, error)) {
            const std::vector<fs::path> files = files_in(path, error);
            if (error) {
                std::fprintf(stderr, "replay: cannot list %s: %s\n", path.c_str(),
                             error.message().c_str());
                return 1;
            }
            if (files.empty()) {
                std::fprintf(stderr, "replay: %s holds no inputs\n", path.c_str());
                return 1;
            }
            for (const auto& file : files) {
                if (!run_file(file)) return 1;
                ++ran;
            }
        } else if (fs::is_regular_file(path, error)) {
            if (!run_file(path)) return 1;
            ++ran;
        } else {
            std::fprintf(stderr, "replay: %s does not exist\n", path.c_str());
            return 1;
        }
    }
    std::printf("replay: ran %zu inputs\n", ran);
    return 0;
}
