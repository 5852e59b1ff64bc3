# shellcheck shell=bash
# Sourced by the bench scripts: a local S3 server (SeaweedFS `weed mini`) on free loopback
# ports, no telemetry, for benchmarks against a real S3 API.
#
#   start_s3_server DIR BUCKET   starts it with its data under DIR (its log is DIR.log), waits
#                                until it answers, creates BUCKET, and sets `endpoint` and
#                                `server_pid`; fails (status 1, the log on stderr) when weed exits.
#   stop_s3_server               stops it.
#
# Needs weed, python3 (to pick free ports) and the AWS CLI; the caller sets the credentials
# (weed mini accepts any).

start_s3_server() {
  local dir="$1" bucket="$2" ports
  read -r -a ports < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(11)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
  rm -rf "$dir"
  mkdir -p "$dir"
  weed mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.port="${ports[0]}" -master.port.grpc="${ports[1]}" \
    -volume.port="${ports[2]}" -volume.port.grpc="${ports[3]}" \
    -filer.port="${ports[4]}" -filer.port.grpc="${ports[5]}" \
    -s3.port="${ports[6]}" -s3.port.grpc="${ports[7]}" -webdav.port="${ports[8]}" \
    -admin.port="${ports[9]}" -admin.port.grpc="${ports[10]}" \
    >"$dir.log" 2>&1 </dev/null &
  server_pid=$!
  endpoint="http://127.0.0.1:${ports[6]}"
  for _ in $(seq 1 300); do
    if aws --endpoint-url "$endpoint" s3 ls >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      cat "$dir.log" >&2
      echo "weed exited" >&2
      return 1
    fi
    sleep 0.2
  done
  aws --endpoint-url "$endpoint" s3api head-bucket --bucket "$bucket" >/dev/null 2>&1 \
    || aws --endpoint-url "$endpoint" s3 mb "s3://$bucket" >/dev/null
}

stop_s3_server() {
  if [ -n "${server_pid:-}" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
