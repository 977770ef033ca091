#!/bin/sh
# smtp_accept.sh — postern's SMTP acceptance benchmark beside Postfix.
#
# A benchmark, not a test: it prints a table and exits 0 unless the
# benchmark itself could not run.  Run as root from a built tree:
#
#     sudo tests/bench/smtp_accept.sh [--quick] [--help for the options]
#
# This wrapper makes sure Postfix's tools (smtp-source, smtp-sink) and
# Postfix itself are installed -- from Debian's package, non-interactively,
# with "No configuration" so the package's own system instance is neither
# configured nor started -- and then runs smtp_accept.py, which does the
# work with Python's standard library only.  See tests/bench/README.md.

set -eu

here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "smtp_accept.sh: run as root (Postfix's instance is started as root)" >&2
	exit 2
fi

case " $* " in
*" -h "*|*" --help "*) exec python3 "$here/smtp_accept.py" --help ;;
esac

# Everything else the benchmark calls (tools/packages, set "test":
# strace among them).
"$here/../../tools/install-packages" test

need_install() {
	for f in /usr/sbin/postfix /usr/sbin/smtp-source /usr/sbin/smtp-sink \
	    /usr/lib/postfix/sbin/master; do
		[ -x "$f" ] || return 0
	done
	return 1
}

if need_install; then
	command -v apt-get >/dev/null 2>&1 || {
		echo "smtp_accept.sh: Postfix is missing and there is no apt-get" >&2
		exit 2
	}
	echo "smtp_accept.sh: installing Debian's postfix package (no configuration, not started)" >&2
	# "No configuration": the package writes no main.cf, so its system
	# instance has nothing to start on port 25.
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
	# And tell invoke-rc.d not to start anything while we install, unless
	# the machine already says so.
	made_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	rc=0
	pkgs=$("$here/../../tools/install-packages" --list bench-postfix)
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		$pkgs >/tmp/postern-bench-apt.log 2>&1 || {
		# A stale or empty package list: refresh once and retry.
		DEBIAN_FRONTEND=noninteractive apt-get update -q \
			>>/tmp/postern-bench-apt.log 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends $pkgs \
			>>/tmp/postern-bench-apt.log 2>&1 || rc=$?
	}
	[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
	if [ "$rc" != 0 ]; then
		echo "smtp_accept.sh: apt-get install postfix failed; see /tmp/postern-bench-apt.log" >&2
		exit 2
	fi
	# If the install started the system instance anyway, stop it: only
	# this benchmark's own instance, on a high port, should run.
	if [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
		postfix stop >/dev/null 2>&1 || true
	fi
fi

exec python3 "$here/smtp_accept.py" "$@"
