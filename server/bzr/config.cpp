// Branch configuration files (docs/formats/control-dir.md#branch-configuration).
#include "server/bzr/config.hpp"

#include <vector>

namespace souk::server::bzr {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Whether `line` assigns top-level option `key` ("key = v", "key=v").
bool assigns(std::string_view line, std::string_view key) {
    size_t i = 0;
    while (i < line.size() && is_space(line[i])) ++i;  // bounded: the line
    if (line.substr(i, key.size()) != key) return false;
    i += key.size();
    while (i < line.size() && is_space(line[i])) ++i;  // bounded: the line
    return i < line.size() && line[i] == '=';
}

}  // namespace

std::string config_quote(std::string_view v) {
    if (v.empty()) return "\"\"";
    // Breezy's configobj: a newline gets triple quotes around a value it
    // has already double-quoted (so the round trip is not clean, as there).
    if (v.find('\n') != std::string_view::npos) return "'''\"\"\"" + std::string(v) + "\"\"\"'''";
    static constexpr std::string_view kEdge = " \r\n\v\t'\"";
    bool needs = kEdge.find(v.front()) != std::string_view::npos || kEdge.find(v.back()) != std::string_view::npos ||
                 v.find(',') != std::string_view::npos || v.find('#') != std::string_view::npos;
    if (!needs) return std::string(v);
    if (v.find('"') == std::string_view::npos) return "\"" + std::string(v) + "\"";
    if (v.find('\'') == std::string_view::npos) return "'" + std::string(v) + "'";
    return "\"\"\"" + std::string(v) + "\"\"\"";
}

std::string config_set(std::string_view conf, std::string_view key, std::string_view value) {
    // Lines with their endings; the file's own line ending is kept.
    std::vector<std::string_view> lines;
    size_t i = 0;
    while (i < conf.size()) {  // bounded: each pass consumes one line
        size_t j = conf.find('\n', i);
        j = j == std::string_view::npos ? conf.size() : j + 1;
        lines.push_back(conf.substr(i, j - i));
        i = j;
    }
    std::string_view eol = !lines.empty() && lines[0].size() >= 2 && lines[0].substr(lines[0].size() - 2) == "\r\n"
                               ? "\r\n"
                               : "\n";
    std::string assignment = std::string(key) + " = " + config_quote(value);
    size_t top_end = lines.size();  // the first [section] line
    for (size_t k = 0; k < lines.size(); ++k) {  // bounded: the lines
        size_t s = lines[k].find_first_not_of(" \t");
        if (s != std::string_view::npos && lines[k][s] == '[') {
            top_end = k;
            break;
        }
    }
    std::string out;
    bool replaced = false;
    size_t insert_after = 0;  // lines [0, insert_after) precede a new assignment
    for (size_t k = 0; k < top_end; ++k) {  // bounded: the lines
        size_t s = lines[k].find_first_not_of(" \t\r\n");
        if (s != std::string_view::npos) insert_after = k + 1;
    }
    for (size_t k = 0; k < lines.size(); ++k) {  // bounded: the lines
        std::string_view line = lines[k];
        if (k < top_end && assigns(line, key)) {
            if (!replaced) out += assignment + std::string(eol);
            replaced = true;
            continue;
        }
        out += line;
        if (k + 1 == insert_after && !replaced) {
            if (line.empty() || line.back() != '\n') out += eol;
            // The assignment goes here unless a later top-level line has it.
            bool later = false;
            for (size_t m = k + 1; m < top_end; ++m)  // bounded: the lines
                if (assigns(lines[m], key)) later = true;
            if (!later) {
                out += assignment + std::string(eol);
                replaced = true;
            }
        }
    }
    if (!replaced) {
        if (!out.empty() && out.back() != '\n') out += eol;
        // No top-level line at all: the assignment opens the file.
        out = assignment + std::string(eol) + out;
    }
    return out;
}

}  // namespace souk::server::bzr
