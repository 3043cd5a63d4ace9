#!/usr/bin/env bash
# Runs a local S3-compatible server for trying `parser-operator backup` by
# hand: versitygw (posix backend, built and cached by hack/tool.sh) on
# 127.0.0.1, storing bucket BUCKET as the directory DIR/BUCKET. It prints the
# flags and the environment the backup commands need, then serves in the
# foreground until interrupted.
#
#   hack/s3-server.sh [DIR]      (default: a new temporary directory)
#   env: PORT (7070), BUCKET (backups)
#
# The keys are made up for this throwaway server and printed on purpose; a
# real store's keys belong in a Secret, never on a command line.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-7070}
BUCKET=${BUCKET:-backups}
DIR=${1:-$(mktemp -d)}
mkdir -p "$DIR/$BUCKET"
VERSITYGW=$(hack/tool.sh versitygw)

ROOT_ACCESS_KEY_ID=local-access
ROOT_SECRET_ACCESS_KEY=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export ROOT_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY

cat >&2 <<MSG
s3-server: serving bucket $BUCKET from $DIR on http://127.0.0.1:$PORT
  export AWS_ACCESS_KEY_ID=$ROOT_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$ROOT_SECRET_ACCESS_KEY
  parser-operator backup list --endpoint http://127.0.0.1:$PORT --bucket $BUCKET --namespace NS --platform NAME
MSG
exec "$VERSITYGW" --port "127.0.0.1:$PORT" --quiet posix "$DIR"
