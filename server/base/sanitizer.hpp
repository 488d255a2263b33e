// Which sanitizer a translation unit is built with, asked the same way
// under GCC (which defines __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__) and
// clang (which answers __has_feature; clang 14 defines neither macro):
// SOUK_ASAN and SOUK_TSAN are 1 when it is, undefined otherwise.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define SOUK_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define SOUK_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(SOUK_ASAN)
#define SOUK_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(SOUK_TSAN)
#define SOUK_TSAN 1
#endif
#endif
