// Result<T>: a value or an error message, for the data path (docs/conventions.md#errors-as-values).
// C++20 has no std::expected; this is the small subset souk needs.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace souk {

struct Error {
    std::string message;
};

// A value or an error of type E (Result<T> below uses souk::Error; the
// Bazaar format library uses its own bzr::Error, server/bzr/error.hpp).
template <typename T, typename E>
class [[nodiscard]] BasicResult {
public:
    BasicResult(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
    BasicResult(E error) : v_(std::move(error)) {}            // NOLINT
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& operator*() & { return std::get<0>(v_); }
    const E& err() const { return std::get<1>(v_); }

private:
    std::variant<T, E> v_;
};

template <typename T>
class [[nodiscard]] Result : public BasicResult<T, Error> {
public:
    using BasicResult<T, Error>::BasicResult;
    const std::string& error() const { return this->err().message; }
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

}  // namespace souk
