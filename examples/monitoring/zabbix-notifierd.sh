#!/bin/sh
# Zabbix media type "Script": copy to the server's AlertScriptsPath
# (/usr/lib/zabbix/alertscripts), chmod 755, and create a media type of type Script with
# script name zabbix-notifierd.sh and the parameters {ALERT.SENDTO}, {ALERT.SUBJECT} and
# {ALERT.MESSAGE}. A user's media "Send to" is the notifierd channel (e.g. alerts).
#
# NOTIFIERD_URL (default http://127.0.0.1:8080) and NOTIFIERD_TOKEN_FILE (optional, a file
# holding one API token) can be set in the Zabbix server's environment.
# Exits non-zero, so Zabbix shows the failure and retries, unless notifierd answered 204.
set -eu
channel=$1
subject=$2
body=$3
url=${NOTIFIERD_URL:-http://127.0.0.1:8080}

set -- --silent --show-error --fail-with-body --max-time 30 \
    --data-urlencode "message=$subject
$body"
if [ -z "${NOTIFIERD_TOKEN_FILE:-}" ]; then
    exec curl "$@" "$url/api/send/$channel"
fi
# The header on stdin, not in the arguments, where `ps` would show the token.
exec curl "$@" --header @- "$url/api/send/$channel" <<HEADER
Authorization: Bearer $(head -n 1 "$NOTIFIERD_TOKEN_FILE")
HEADER
