#!/usr/bin/env bash
# Model check of the root key rotation: model/rotation.pml against the
# claims described in docs/eras.md ("The model").
#
#   * the correct model, overlapping (default) and disjoint (-DDISJOINT)
#     sets: the safety claims (a)-(c) exhaustively with an arbitrary
#     deadline; the liveness claims (d)-(e) with weak fairness under the
#     timeliness assumption (-DTIMELY). Each must report no error.
#   * witnesses: claims that must fail in the correct model (Ready reached
#     in the last attempt after crashes, or with a smaller G_n; a rotation
#     abandoned; a leader goes down), so the checks are not vacuous.
#   * mutants: each deliberate bug must make its claim fail.
#
# Builds and runs in a temporary directory; nothing is written to the tree.
# Exits non-zero if the correct model has an error, a witness or a mutant
# passes, or a search is incomplete. JOBS (default 2) runs in parallel.
set -euo pipefail
CC=${CC:-gcc}

if ! command -v spin >/dev/null 2>&1; then
	echo "model/check.sh: spin is not installed." >&2
	echo "  Install it with: apt-get install spin   (sudo apt-get install spin as a user)" >&2
	exit 2
fi
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "model/check.sh: no C compiler ($CC) for spin's verifiers; install gcc." >&2
	exit 2
fi

case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
here=$(cd "$here" && pwd)
model=$here/rotation.pml
JOBS=${JOBS:-2}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rotation-model.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/results"

# job ID OPT "SPIN DEFINES" "CLAIM/PAN FLAGS/EXPECT" ...
#   Builds the verifier for one set of defines (compiler optimisation OPT)
#   and runs it once per claim. EXPECT is `holds` (no error allowed, search
#   complete) or `violated` (at least one error required). Writes one
#   tab-separated result line per claim.
job() {
	local id=$1 opt=$2 defs=$3
	shift 3
	local dir=$tmp/$id res=$tmp/results/$id
	mkdir "$dir"
	cp "$model" "$dir/rotation.pml"
	# shellcheck disable=SC2086
	if ! (cd "$dir" && spin $defs -a rotation.pml >spin.log 2>&1 &&
		"$CC" -w $opt -DNFAIR=4 -o pan pan.c >cc.log 2>&1); then
		printf '%s\t%s\t-\t-\t-\t-\tFAIL (build: %s)\n' "$id" "$defs" \
			"$(cat "$dir"/*.log | tail -n 3 | tr '\n\t' '  ')" >"$res"
		return
	fi
	local spec claim flags expect out errors states secs verdict
	for spec in "$@"; do
		IFS=/ read -r claim flags expect <<<"$spec"
		out=$dir/$claim.out
		# shellcheck disable=SC2086
		(cd "$dir" && ./pan -m20000 -n $flags -N "$claim" >"$out" 2>&1) || true
		errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | tail -n 1)
		states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" | tail -n 1)
		secs=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' "$out" | tail -n 1)
		if [ -z "$errors" ]; then
			verdict="FAIL (no result: $(head -n 2 "$out" | tr '\n\t' '  '))"
		elif [ "$expect" = holds ]; then
			if [ "$errors" != 0 ]; then
				verdict="FAIL ($(grep -m 1 -E '^pan:[0-9]' "$out" | cut -c1-60 || echo "$errors errors"))"
			elif grep -q -E 'search depth too small|out of memory|Search not completed' "$out"; then
				verdict="FAIL (search incomplete)"
			else
				verdict="ok: holds"
			fi
		elif [ "$errors" = 0 ]; then
			verdict="FAIL (no violation found)"
		elif [[ $flags == *-f* ]] && ! grep -q 'acceptance cycle' "$out"; then
			# a liveness claim is violated by a cycle, not by an assertion
			verdict="FAIL (an error, but not the claim: $(grep -m 1 -E '^pan:[0-9]' "$out" | cut -c1-60))"
		else
			verdict="ok: violated, as required ($(grep -m 1 -o -E 'assertion violated|acceptance cycle' "$out" || echo error))"
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "${defs:--}" "$claim" "$flags" \
			"${states:--}" "${secs:--}" "$verdict" >>"$res"
	done
}

pids=()
expected=0
run() {
	expected=$((expected + $# - 3))
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
	job "$@" &
	pids+=($!)
}

start=$(date +%s)
ver=$(spin -V 2>/dev/null | head -n 1)

# Correct model. Safety (a)-(c) in one exhaustive run per configuration
# (claim `safety` is their conjunction; they share one state space);
# liveness (d), (e) under TIMELY with weak fairness.
run 01-disjoint-safe -O2 "-DDISJOINT" "safety/-a/holds" "w_ready_last/-a/violated" "w_small_set/-a/violated" "w_abandon/-a/violated"
run 02-overlap-safe  -O2 "" "safety/-a/holds" "w_ready_last/-a/violated" "w_small_set/-a/violated" "w_abandon/-a/violated"
run 03-overlap-live  -O0 "-DTIMELY" "d_ready/-a -f/holds" "e_restart/-a -f/holds" "w_leader_down/-a/violated"
run 04-disjoint-live -O0 "-DTIMELY -DDISJOINT" "d_ready/-a -f/holds" "e_restart/-a -f/holds" "w_leader_down/-a/violated"
# Mutants: each must violate the claim it attacks. The first four need no
# crash (MAXCRASH=0 only makes the search shorter: fewer behaviours, so a
# violation found there is one of the full model too).
run 05-mutant -O0 "-DBUG_ERASE_EARLY -DMAXCRASH=0" "b_no_loss/-a/violated"
run 06-mutant -O0 "-DBUG_READY_EARLY -DMAXCRASH=0" "b_no_loss/-a/violated"
run 07-mutant -O0 "-DBUG_RESUME_EARLY -DMAXCRASH=0" "c_traffic/-a/violated"
run 08-mutant -O0 "-DBUG_DEADLINE_AFTER_READY -DMAXCRASH=0" "a_one_key/-a/violated"
run 09-mutant -O0 "-DBUG_STALE_CONFIRM" "b_no_loss/-a/violated"
run 10-mutant -O0 "-DTIMELY -DBUG_EXCLUDED_LEADER" "d_ready/-a -f/violated"
for p in "${pids[@]}"; do wait "$p" || true; done

status=0
echo "rotation model: $ver"
fmt='%-17s %-42s %-14s %-6s %10s %6s  %s\n'
# shellcheck disable=SC2059
printf "$fmt" run defines claim flags states secs verdict
for f in "$tmp"/results/*; do
	while IFS=$'\t' read -r id defs claim flags states secs verdict; do
		case $verdict in ok*) ;; *) status=1 ;; esac
		# shellcheck disable=SC2059
		printf "$fmt" "$id" "$defs" "$claim" "$flags" "$states" "$secs" "$verdict"
	done <"$f"
done
got=$(cat "$tmp"/results/* 2>/dev/null | wc -l)
if [ "$got" -ne "$expected" ]; then
	echo "only $got of $expected runs reported a result"
	status=1
fi
echo "wall time: $(($(date +%s) - start)) s"
if [ "$status" != 0 ]; then
	echo "model/check.sh: FAILED" >&2
	exit 1
fi
echo "model/check.sh: every claim holds, every witness is reached, every mutant is caught"
