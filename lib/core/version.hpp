#pragma once

namespace aad::version {
extern const char* const semver;      // project version from meson.build
extern const char* const git_commit;  // `git describe` at build time
extern const char* const build_date;  // UTC date of the build configuration
}  // namespace aad::version
