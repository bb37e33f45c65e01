# What `cmake --install` puts where (included by the top CMakeLists.txt). The
# Debian package (debian/) installs through these same rules.
#
# Files under /etc are the operator's once installed: a later install never
# overwrites an edited one (install-operator-file.cmake), it puts the new
# version beside it as .new and says so. The package leaves that to dpkg,
# which treats them as conffiles.

# Where systemd looks for units, sysusers.d and tmpfiles.d snippets, relative
# to the prefix unless absolute. Debian 12's package puts units in
# /lib/systemd/system (its packaging passes that).
set(SHOPCAST_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING "Where the systemd units go")
set(SHOPCAST_SYSUSERS_DIR "lib/sysusers.d" CACHE STRING "Where the sysusers.d snippet goes")
set(SHOPCAST_TMPFILES_DIR "lib/tmpfiles.d" CACHE STRING "Where the tmpfiles.d snippet goes")

# The browser client and the demo page; the npm package's files stay in the
# source tree (a WebApp installs them from there, see web/README.md).
install(DIRECTORY web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/shopcast/web
        PATTERN "*.md" EXCLUDE PATTERN "package.json" EXCLUDE)

install(FILES systemd/shopcastd.service systemd/shopcastd.socket systemd/shopcastd-events.socket
              systemd/shopcastd@.service systemd/shopcast-fcgi.service systemd/shopcast-fcgi.socket
        DESTINATION ${SHOPCAST_SYSTEMD_UNIT_DIR})
install(FILES systemd/shopcast.sysusers.conf DESTINATION ${SHOPCAST_SYSUSERS_DIR} RENAME shopcast.conf)
install(FILES systemd/shopcast.tmpfiles.conf DESTINATION ${SHOPCAST_TMPFILES_DIR} RENAME shopcast.conf)

# shopcast_install_operator_file(SOURCE DIRECTORY NAME PERMISSIONS...): one
# file under /etc, installed by install-operator-file.cmake's rule. The copy of
# what was shipped (to tell an edited file from an old one) is kept under
# share/shopcast/shipped/.
set(shopcast_operator_script ${CMAKE_CURRENT_LIST_DIR}/install-operator-file.cmake)
function(shopcast_install_operator_file source directory name)
  file(RELATIVE_PATH relative ${CMAKE_INSTALL_FULL_SYSCONFDIR} ${directory}/${name})
  install(CODE "
    set(operator_source \"${PROJECT_SOURCE_DIR}/${source}\")
    set(operator_directory \"${directory}\")
    set(operator_name \"${name}\")
    set(operator_shipped \"${CMAKE_INSTALL_FULL_DATADIR}/shopcast/shipped/${relative}\")
    set(operator_permissions \"${ARGN}\")
    include(\"${shopcast_operator_script}\")")
endfunction()

set(nginx_dir ${CMAKE_INSTALL_FULL_SYSCONFDIR}/nginx)
shopcast_install_operator_file(nginx/shopcast.conf ${nginx_dir}/sites-available shopcast.conf
                               OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
# The locations the site includes (snippets/... relative to /etc/nginx).
file(GLOB nginx_snippets CONFIGURE_DEPENDS RELATIVE ${PROJECT_SOURCE_DIR}
     ${PROJECT_SOURCE_DIR}/nginx/snippets/shopcast-*.conf)
foreach(snippet IN LISTS nginx_snippets)
  get_filename_component(snippet_name ${snippet} NAME)
  shopcast_install_operator_file(${snippet} ${nginx_dir}/snippets ${snippet_name}
                                 OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()
# Settings only (secrets come as credential files), but not for everyone to read.
shopcast_install_operator_file(systemd/shopcast.env.example ${CMAKE_INSTALL_FULL_SYSCONFDIR}/shopcast
                               shopcast.env OWNER_READ OWNER_WRITE GROUP_READ)
