#include "server/base/access.hpp"

#include "server/base/strings.hpp"

namespace souk::server {

std::string parse_rule_prefix(std::string_view text, std::string& out) {
    out.clear();
    if (text.size() > 4096) return "path prefix longer than 4096 bytes";
    for (unsigned char c : text)  // bounded: the text
        if (c < 0x20 || c == 0x7f) return "control byte in the path prefix";
    for (std::string_view part : split(text, '/')) {  // bounded: the text
        if (part.empty()) continue;
        if (part == "." || part == "..") return "'.' and '..' are not allowed in a path prefix";
        if (!out.empty()) out += '/';
        out += part;
    }
    return {};
}

std::string check_user_name(std::string_view name) {
    if (name.empty()) return "empty user name";
    if (name.size() > 256) return "user name longer than 256 bytes";
    for (unsigned char c : name)  // bounded: 256
        if (c <= 0x20 || c == 0x7f || c == ',' || c == '=')
            return "user name with a space, control byte, ',' or '=': " + printable(name);
    return {};
}

std::string parse_writers_rule(std::string_view text, WriterRule& out) {
    out = WriterRule{};
    const size_t eq = text.rfind('=');
    if (eq == std::string_view::npos) return "expected PREFIX=USER[,USER...] (PREFIX= for nobody)";
    if (std::string why = parse_rule_prefix(text.substr(0, eq), out.prefix); !why.empty()) return why;
    std::string_view users = text.substr(eq + 1);
    if (users.empty()) return {};
    for (std::string_view u : split(users, ',')) {  // bounded: the text
        if (std::string why = check_user_name(u); !why.empty()) return why;
        out.users.emplace_back(u);
    }
    return {};
}

std::string format_rule_prefix(std::string_view prefix) { return "/" + std::string(prefix); }

std::string format_writers_rule(const WriterRule& rule) {
    std::string s = format_rule_prefix(rule.prefix) + "=";
    for (size_t i = 0; i < rule.users.size(); ++i) s += (i ? "," : "") + rule.users[i];  // bounded: the users
    return s;
}

bool covers(std::string_view prefix, std::string_view path) {
    if (prefix.empty()) return true;
    if (path.substr(0, prefix.size()) != prefix) return false;
    return path.size() == prefix.size() || path[prefix.size()] == '/';
}

std::string write_refusal(const AccessRules& rules, std::string_view user, std::string_view path, bool anonymous_ok) {
    if (user.empty() && !anonymous_ok)
        return "writes need an authenticated user (--allow-anonymous-writes is off)";
    for (const auto& p : rules.read_only)  // bounded: the rules
        if (covers(p, path)) return "read-only (read-only = " + format_rule_prefix(p) + ")";
    const WriterRule* best = nullptr;
    for (const auto& r : rules.writers)  // bounded: the rules
        if (covers(r.prefix, path) && (!best || r.prefix.size() > best->prefix.size())) best = &r;
    if (!best) return {};
    for (const auto& u : best->users)  // bounded: the rule's users
        if (u == user) return {};
    return (user.empty() ? std::string("an anonymous user") : "user " + std::string(user)) +
           " may not write under " + format_rule_prefix(best->prefix) + " (not in its writers rule)";
}

}  // namespace souk::server
