#!/bin/sh
# Sum up a `make check` run from its logs: Check's per-binary summaries
# ("100%: Checks: N, Failures: F, Errors: E") and the integration tests'
# "integration: N passed, N failed, N skipped" lines.  A test program that
# failed without printing a summary (a crash, a timeout) counts as one
# failure.  Prints Check's totals, then "N passed, N failed" last.
# usage: summary.sh BUILDDIR...
[ $# -gt 0 ] || set -- .
checks=0 cfail=0 ipass=0 ifail=0 iskip=0 crashed=0
for trs in $(for dir in "$@"; do find "$dir/tests" -name '*.trs'; done | sort); do
	log=${trs%.trs}.log
	result=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
	line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" 2>/dev/null | tail -n 1)
	iline=$(grep -E '^integration: [0-9]+ passed' "$log" 2>/dev/null | tail -n 1)
	if [ -n "$line" ]; then
		n=$(echo "$line" | sed 's/.*Checks: \([0-9]*\).*/\1/')
		f=$(echo "$line" | sed 's/.*Failures: \([0-9]*\).*/\1/')
		e=$(echo "$line" | sed 's/.*Errors: \([0-9]*\).*/\1/')
		checks=$((checks + n)); cfail=$((cfail + f + e))
	elif [ -n "$iline" ]; then
		set -- $(echo "$iline" | sed 's/[^0-9 ]//g')
		ipass=$((ipass + $1)); ifail=$((ifail + $2)); iskip=$((iskip + ${3:-0}))
	fi
	if [ "$result" = FAIL ] || [ "$result" = ERROR ]; then
		if [ -z "$line$iline" ]; then
			echo "FAILED without a summary: ${trs%.trs}"
			crashed=$((crashed + 1))
		elif [ -n "$line" ] && [ "$f$e" = 00 ]; then
			echo "FAILED (exit status) after passing checks: ${trs%.trs}"
			crashed=$((crashed + 1))
		fi
	fi
done
cpass=$((checks - cfail))
pct=100
[ "$checks" -gt 0 ] && pct=$((cpass * 100 / checks))
echo "Check unit tests: $pct%: Checks: $checks, Failures: $cfail, Errors: 0"
echo "Integration tests: $ipass passed, $ifail failed, $iskip skipped"
echo "$((cpass + ipass)) passed, $((cfail + ifail + crashed)) failed"
