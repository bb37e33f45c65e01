# Installs one file the operator owns once it is in place (the nginx site, its
# snippets, the settings file), at `cmake --install` time. Run by the
# install(CODE) rules in ShopcastInstall.cmake with these variables set:
#   operator_source     the file in the source tree
#   operator_directory  where it goes (absolute, without DESTDIR)
#   operator_name       its name there
#   operator_shipped    absolute path (without DESTDIR) of the copy of what
#                       the previous install shipped
#   operator_permissions  file(INSTALL) PERMISSIONS keywords
#
# The rule, as dpkg treats a conffile:
#   - not there yet: installed;
#   - the same as what this install ships: left alone;
#   - the same as what the previous install shipped (not edited): replaced;
#   - anything else (edited by the operator): kept; the new version goes
#     beside it as <name>.new and a line says so.
# The shipped copy is updated last, so the next install compares against it.

set(target "$ENV{DESTDIR}${operator_directory}/${operator_name}")
set(shipped "$ENV{DESTDIR}${operator_shipped}")

set(action install)
if(EXISTS "${target}")
  file(SHA256 "${target}" target_hash)
  file(SHA256 "${operator_source}" source_hash)
  set(shipped_hash "")
  if(EXISTS "${shipped}")
    file(SHA256 "${shipped}" shipped_hash)
  endif()
  if(target_hash STREQUAL source_hash)
    set(action keep)
  elseif(NOT target_hash STREQUAL shipped_hash)
    set(action beside)
  endif()
endif()

if(action STREQUAL "install")
  file(INSTALL "${operator_source}" DESTINATION "${operator_directory}" RENAME "${operator_name}"
       PERMISSIONS ${operator_permissions})
elseif(action STREQUAL "keep")
  message(STATUS "Up-to-date: ${target}")
else()
  file(INSTALL "${operator_source}" DESTINATION "${operator_directory}" RENAME "${operator_name}.new"
       PERMISSIONS ${operator_permissions})
  message(NOTICE "shopcast: ${target} was edited, so it was kept; the new version is "
                 "${target}.new: merge the changes and remove it")
endif()

get_filename_component(shipped_directory "${operator_shipped}" DIRECTORY)
get_filename_component(shipped_name "${operator_shipped}" NAME)
file(INSTALL "${operator_source}" DESTINATION "${shipped_directory}" RENAME "${shipped_name}"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
