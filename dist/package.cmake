# The Debian package, built by CPack from an existing build (no second
# compile): `cpack -G DEB --config BUILD/CPackConfig.cmake -B OUTDIR`.
# Two packages, as Debian splits them (docs/install.md#the-debian-package):
#   souk         the programs, man pages, config, units, logrotate file;
#                maintainer scripts in dist/debian/
#   libsouk-dev  libsouk.a, its headers, souk.pc and the CMake package
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME souk)
set(CPACK_PACKAGE_VENDOR souk)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${SOUK_DEB_MAINTAINER}")  # dist/CMakeLists.txt
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
# Installed with DESTDIR and the prefix /usr, so that dist/install-dist.cmake
# sees /usr and puts the configuration under /etc.
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)  # the prefix CPack installs with when it sets DESTDIR
set(CPACK_SET_DESTDIR ON)
# Stripped, as Debian ships programs (the build itself keeps its debug info).
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL Runtime Development)
# A native package (the packaging lives in the upstream tree): version
# 0.1.0, no Debian revision, a Debian changelog as changelog.gz.
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # NAME_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME souk)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION vcs)
# dpkg-shlibdeps adds the shared libraries soukd and souk link; the
# maintainer scripts need adduser.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SUGGESTS "brz, logrotate")
# Each description's first line is the package's synopsis (CPACK_PACKAGE_DESCRIPTION_SUMMARY
# stays unset: CPack would put it above both).
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "Bazaar smart protocol server (bzr://, bzr+ssh://, bzr+http://)
soukd serves Bazaar branches to an unmodified Breezy client over SSH,
bzr:// (TCP), HTTP and CGI, with no Python on the server: read-only unless
told otherwise, confined to its root, every limit a parameter. souk is a
command-line client for the same protocol. The systemd units are installed
disabled.")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_SOURCE_DIR}/debian/conffiles ${CMAKE_CURRENT_SOURCE_DIR}/debian/postinst
  ${CMAKE_CURRENT_SOURCE_DIR}/debian/prerm ${CMAKE_CURRENT_SOURCE_DIR}/debian/postrm)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME libsouk-dev)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS "libssl-dev, libzstd-dev")
set(CPACK_COMPONENT_DEVELOPMENT_DESCRIPTION "Bazaar smart protocol client library (static, development files)
libsouk talks the Bazaar smart protocol over bzr://, bzr+ssh:// and
bzr+http(s)://: one C++20 API over every carrier, typed errors, readv
coalescing and retries where safe. pkg-config: souk; CMake: find_package(souk),
target souk::client.")

include(CPack)
