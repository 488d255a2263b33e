# Runs at install time (install(SCRIPT) in dist/CMakeLists.txt), when the
# prefix is known. GNU's rule for the configuration directory: PREFIX/etc,
# except /etc for the prefix /usr (what GNUInstallDirs does at configure
# time; here it must follow `cmake --install --prefix`). DESTDIR, which the
# package build sets, is prepended by file(INSTALL).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(SOUK_ETC /etc)
else()
  set(SOUK_ETC ${CMAKE_INSTALL_PREFIX}/etc)
endif()
# The values the units' @NAME@ placeholders take (dist/systemd/README.md).
set(SOUKD ${CMAKE_INSTALL_PREFIX}/${SOUK_SBINDIR}/soukd)
set(SOUK_CONFIG ${SOUK_ETC}/souk/soukd.conf)

file(INSTALL ${SOUK_DIST_SRC}/soukd.conf DESTINATION ${SOUK_ETC}/souk)
file(INSTALL ${SOUK_DIST_SRC}/logrotate/souk DESTINATION ${SOUK_ETC}/logrotate.d)
file(GLOB units ${SOUK_DIST_SRC}/systemd/*.service ${SOUK_DIST_SRC}/systemd/*.socket)
foreach(unit ${units})
  get_filename_component(name ${unit} NAME)
  configure_file(${unit} ${SOUK_DIST_BIN}/units/${name} @ONLY)
  file(INSTALL ${SOUK_DIST_BIN}/units/${name} DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endforeach()
