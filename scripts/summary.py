#!/usr/bin/env python3
# scripts/summary.py BUILD-DIR LEG: one leg's tests, from Meson's
# BUILD-DIR/meson-logs/testlog.json, in a few lines: how many ran, passed,
# failed and were skipped, and why each skip happened.  A skip is either a
# whole test (exit 77) or a case inside a suite that printed "skipped"
# (TEST_NEEDS and the like: a kernel or emulator lacking a feature).
#
# scripts/summary.py BUILD-DIR LEG --failures: only the failed tests, one
# line each, with Check's first failure line (file:line:F|E:case:test:
# message) or the test's last line of output, so that the end of a long
# run says what failed.
import json
import os
import re
import sys

build, leg = sys.argv[1], sys.argv[2]
failures_only = sys.argv[3:] == ['--failures']
log = os.path.join(build, 'meson-logs', 'testlog.json')
try:
    with open(log, encoding='utf-8', errors='replace') as f:
        tests = [json.loads(line) for line in f if line.strip()]
except OSError as e:
    print(f'{leg}: no test log ({e.strerror}: {log})')
    sys.exit(0)

if failures_only:
    for t in tests:
        if t['result'] in ('OK', 'EXPECTEDFAIL', 'SKIP'):
            continue
        text = (t.get('stdout') or '') + (t.get('stderr') or '')
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        why = next((ln for ln in lines if re.search(r':[FE]:', ln)),
                   lines[-1] if lines else '(no output)')
        print(f"{leg}: {t['name'].split(' / ')[-1]} {t['result']}: {why[:300]}")
    sys.exit(0)

counts = {}
for t in tests:
    counts[t['result']] = counts.get(t['result'], 0) + 1
ok = counts.get('OK', 0) + counts.get('EXPECTEDFAIL', 0)
skip = counts.get('SKIP', 0)
bad = len(tests) - ok - skip
print(f'{leg}: {len(tests)} tests: {ok} passed, {bad} failed, {skip} skipped')

reasons = {}
for t in tests:
    name = t['name'].split(' / ')[-1]
    text = (t.get('stdout') or '') + (t.get('stderr') or '')
    for line in text.splitlines():
        if t['result'] == 'SKIP' and line.strip():
            why = line.strip()
        elif re.search(r'\bskipped:', line):
            why = line.strip()
        else:
            continue
        # "test_x: skipped: why" -> "why"; the cases named once per reason.
        m = re.match(r'(\S+?):(?: case .*?)? skipped: (.*)', why)
        key = m.group(2) if m else re.sub(r'^skipped: ', '', why)
        who = f'{name}/{m.group(1)}' if m else name
        reasons.setdefault(key, []).append(who)
        if t['result'] == 'SKIP':
            break
for why, who in sorted(reasons.items()):
    shown = ', '.join(who[:3]) + (f' and {len(who) - 3} more' if len(who) > 3 else '')
    print(f'{leg}:   {len(who)} skipped ({why}): {shown}')
