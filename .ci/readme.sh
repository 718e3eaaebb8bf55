#!/usr/bin/env bash
# Runs README.md's commands as a new user would, so that they cannot rot: the run command of
# "Run and test" (the first `cargo run` line) from the repository root, then the whole
# grpcurl walkthrough of "Try it with grpcurl", which must succeed call by call; then checks a
# few of its answers. Needs grpcurl on PATH.
#
#   bash .ci/readme.sh
#
# Only three things differ
# from the README, each to keep concurrent runs and the clone apart: the server's address (a
# free port instead of 127.0.0.1:50051), its data dir (GROUP_SERVICE_DATA_DIR, a temporary
# directory instead of ./data; `gs token` reads the same one), and the walkthrough's scratch
# files (a temporary directory instead of /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v grpcurl >/dev/null || { echo "readme: grpcurl is not on PATH" >&2; exit 1; }

scratch=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then
    # `cargo run` is the process group's leader; the server is its child.
    kill -- "-$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The run command and the walkthrough, as README.md has them.
python3 - "$scratch" <<'PY'
import pathlib, re, sys
scratch = pathlib.Path(sys.argv[1])
readme = pathlib.Path("README.md").read_text()

def section_block(title):
    """The first ```sh block of the section titled `title`."""
    section = readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)

run = [l for l in section_block("Run and test").splitlines() if l.startswith("cargo run")][0]
(scratch / "run.sh").write_text(run.split("#", 1)[0].strip() + "\n")
(scratch / "walkthrough.sh").write_text(section_block("Try it with grpcurl"))
PY
run=$(cat "$scratch/run.sh")
walkthrough=$(cat "$scratch/walkthrough.sh")
grep -q '127.0.0.1:50051' <<<"$walkthrough" || { echo "readme: the walkthrough's address moved" >&2; exit 1; }
walkthrough=${walkthrough//127.0.0.1:50051/127.0.0.1:$port}
walkthrough=${walkthrough//\/tmp\//$scratch/}
printf 'set -euo pipefail\n%s\n' "$walkthrough" >"$scratch/walkthrough.sh"

export GROUP_SERVICE_DATA_DIR="$scratch/data"
export GROUP_SERVICE_LISTEN="127.0.0.1:$port"
echo "readme: $run (on $GROUP_SERVICE_LISTEN)"
setsid bash -c "$run" >"$scratch/server.log" 2>&1 &
server=$!

# Up to 15 minutes: without a build to reuse, `cargo run` compiles first.
for _ in $(seq 1 1800); do
  if grpcurl -plaintext -max-time 1 "127.0.0.1:$port" grpc.health.v1.Health/Check 2>/dev/null \
    | grep -q '"SERVING"'; then
    break
  fi
  kill -0 "$server" 2>/dev/null || { echo "readme: the server exited" >&2; cat "$scratch/server.log" >&2; exit 1; }
  sleep 0.5
done
grpcurl -plaintext -max-time 1 "127.0.0.1:$port" grpc.health.v1.Health/Check >/dev/null \
  || { echo "readme: the server did not serve" >&2; cat "$scratch/server.log" >&2; exit 1; }

echo "readme: replaying the grpcurl walkthrough"
# From the repository root, as the README says.
if ! bash -x "$scratch/walkthrough.sh" >"$scratch/answers.txt" 2>"$scratch/trace.txt"; then
  echo "readme: the walkthrough failed; its last commands and errors:" >&2
  tail -n 20 "$scratch/trace.txt" >&2
  exit 1
fi

# Its answers, in order (the service list first, then one JSON object per call).
python3 - "$scratch/answers.txt" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
answers, i, decoder = [], text.index("\n{"), json.JSONDecoder()
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i == len(text):
        break
    answer, i = decoder.raw_decode(text, i)
    answers.append(answer)

def check(ok, what):
    if not ok:
        sys.exit(f"readme: {what}; the answers were:\n{text}")

services = text[: text.index("\n{")].split()
check("groups.v1.GroupService" in services, "reflection lists groups.v1.GroupService")
checks = [a for a in answers if "member" in a]
check(len(checks) == 2 and all(a["member"] for a in checks),
      "both CheckMembership calls (by id, by external key) say member")
groups = [a for a in answers if "displayName" in a]
check(any(g["displayName"] == "Launch with Globex" and g.get("excludedMembers") for g in groups),
      "the external group lists Lee in excludedMembers")
search = [a for a in answers if "groups" in a]
check(any(any(g.get("displayName") == "Design" for g in a["groups"]) for a in search),
      "Choi's search finds Design")
print(f"readme: {len(answers)} answers, checked")
PY
