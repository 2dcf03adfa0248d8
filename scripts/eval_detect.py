#!/usr/bin/env python3
"""Scores the detector on simulated worlds (issue 5's quality check).

For each scenario and seed: `moat simulate`, a fresh data directory, `moat import`
of every file (events last: the import runs the detector), `moat alerts --json
--status all`, then per attack against truth.json (which moat never reads):

  detected      an alert names the attack's principal (or, for credential
                stuffing, one of the attacker's source addresses) at or after the
                attack's first event
  time to alert first such alert minus the attack's first event time
  served share  orders the attack pulled up to the first alert whose action stops
                plaintext (suspend or force_mask) over the orders it attempted
                (1.0 if no such alert)
  precision     alerts that name an attacker principal or source / all alerts
  false/1k pd   alerts that name no attacker per 1,000 human principal-days

usage: eval_detect.py --moat BIN [--scale small] [--seeds 101,102] [--scenarios a,b]
                      [--work DIR] [--rules FILE]
"""
import argparse
import collections
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

SCENARIOS = ["cs_insider", "isv_overpull", "credential_stuffing", "low_slow",
             "platform_insider", "courier_leak", "two_leakers", "clean"]
STOPPING = {"suspend", "force_mask"}


def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    return r.stdout


def one(moat, scenario, seed, scale, work, rules, orders=None, reuse=False):
    out = os.path.join(work, "%s-%d" % (scenario, seed))
    data = out + ".data"
    env = dict(os.environ, MOAT_LOG_LEVEL="warn")
    if reuse and os.path.exists(os.path.join(data, "moat.db")):
        # Judge the same imported world again with other rules: forget the
        # stored alerts and the cursor (the old ALERT entries stay on the ledger
        # and are skipped), then scan.
        run(["sqlite3", os.path.join(data, "moat.db"),
             "DELETE FROM detect_alerts; DELETE FROM detect_actions;"
             " DELETE FROM meta WHERE key = 'detect.cursor';"])
        if rules:
            shutil.copy(rules, os.path.join(data, "rules.conf"))
        else:
            open(os.path.join(data, "rules.conf"), "w").write(run([moat, "rules", "default"]))
        run([moat, "alerts", "scan", "--data", data], env=env)
    else:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
        run([moat, "simulate", "--scenario", scenario, "--seed", str(seed), "--scale", scale,
             "--out", out] + (["--orders", str(orders)] if orders else []))
        run([moat, "init", "--data", data])
        if rules:
            shutil.copy(rules, os.path.join(data, "rules.conf"))
        for kind in ["parties", "principals", "relations", "orders", "events"]:
            run([moat, "import", kind, os.path.join(out, kind + ".jsonl"), "--data", data], env=env)
    alerts = json.loads(run([moat, "alerts", "--json", "--status", "all", "--data", data]))["alerts"]
    truth = json.load(open(os.path.join(out, "truth.json")))

    # Orders each attacker principal pulled, with times (access order_id, export order_ids).
    attackers = {a["principal"] for a in truth["attacks"]}
    pulls = collections.defaultdict(list)
    with open(os.path.join(out, "events.jsonl")) as f:
        for line in f:
            if not any(p in line for p in attackers):
                continue
            e = json.loads(line)
            p = e.get("principal")
            if p not in attackers or e["kind"] == "login":
                continue
            t = ts(e["time"])
            for o in e.get("order_ids", [e.get("order_id")]):
                if o:
                    pulls[p].append((t, o))

    bad_keys = set()
    rows = []
    for a in truth["attacks"]:
        keys = {a["principal"]} | set((a.get("attacker") or {}).get("ips", []))
        bad_keys |= keys
        if not a.get("abnormal_activity", True):
            rows.append(dict(kind=a["kind"], principal=a["principal"], detectable=False))
            continue
        t0 = ts(a["first_event_time"])
        t_from, t_until = ts(a["window"]["from"]), ts(a["window"]["until"])
        mine = [x for x in alerts
                if (x["principal"] in keys or x["key"] in keys) and ts(x["time"]) >= t0 - 1]
        mine.sort(key=lambda x: ts(x["time"]))
        first = ts(mine[0]["time"]) if mine else None
        stop = [x for x in mine if x["action"] in STOPPING and x["principal"] == a["principal"]]
        stop_t = ts(stop[0]["time"]) if stop else None
        pulled = [(t, o) for t, o in pulls[a["principal"]] if t_from - 1 <= t <= t_until + 1]
        attempted = len({o for _, o in pulled}) or a.get("attempted_orders") or 1
        served = len({o for t, o in pulled if stop_t is None or t <= stop_t})
        rows.append(dict(kind=a["kind"], principal=a["principal"], detectable=True,
                         detected=bool(mine), tta=(first - t0) if mine else None,
                         served=served / attempted, attempted=attempted,
                         rules=sorted({x["rule"] for x in mine})))
    tp = sum(1 for x in alerts if x["principal"] in bad_keys or x["key"] in bad_keys)
    fp = len(alerts) - tp
    pdays = truth["stats"].get("principal_days") or 1
    return dict(scenario=scenario, seed=seed, alerts=len(alerts), tp=tp, fp=fp,
                fp_per_1k=1000.0 * fp / pdays, pdays=pdays, attacks=rows,
                fp_rules=collections.Counter(x["rule"] for x in alerts
                                             if not (x["principal"] in bad_keys
                                                     or x["key"] in bad_keys)))


def fmt_t(s):
    if s is None:
        return "-"
    return "%.0f s" % s if s < 120 else "%.1f min" % (s / 60) if s < 7200 else "%.1f h" % (s / 3600)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moat", required=True)
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seeds", default="101,102,103")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--work")
    ap.add_argument("--rules")
    ap.add_argument("--orders", type=int, help="override the scale's order count")
    ap.add_argument("--reuse", action="store_true",
                    help="re-judge worlds already imported in --work instead of simulating")
    ap.add_argument("--json", action="store_true")
    o = ap.parse_args()
    work = o.work or tempfile.mkdtemp(prefix="moat-eval-")
    results = []
    for sc in o.scenarios.split(","):
        for seed in [int(s) for s in o.seeds.split(",")]:
            results.append(one(os.path.abspath(o.moat), sc, seed, o.scale, work, o.rules, o.orders, o.reuse))
    if o.json:
        print(json.dumps(results, indent=1, default=str))
        return
    print("%-20s %5s %7s %9s %10s %8s %9s %s" % ("scenario/attack", "runs", "recall", "precision",
                                                "false/1kpd", "tta(med)", "served(max)",
                                                "rules that fired"))
    by = collections.OrderedDict()
    for r in results:
        by.setdefault(r["scenario"], []).append(r)
    for sc, rs in by.items():
        alerts = sum(r["alerts"] for r in rs)
        tp = sum(r["tp"] for r in rs)
        fp = sum(r["fp"] for r in rs)
        pd = sum(r["pdays"] for r in rs)
        prec = tp / alerts if alerts else float("nan")
        print("%-20s %5d %7s %9.3f %10.3f %8s %9s  alerts=%d fp=%d %s" % (
            sc, len(rs), "", prec, 1000.0 * fp / pd, "", "", alerts, fp,
            dict(sum((r["fp_rules"] for r in rs), collections.Counter()))))
        kinds = collections.OrderedDict()
        for r in rs:
            for a in r["attacks"]:
                kinds.setdefault(a["kind"], []).append(a)
        for k, atts in kinds.items():
            det = [a for a in atts if a.get("detectable")]
            if not det:
                print("  %-18s %5d %7s  (no abnormal activity: the tracer's job)" % (k, len(atts), "n/a"))
                continue
            rec = sum(a["detected"] for a in det) / len(det)
            ttas = sorted(a["tta"] for a in det if a["tta"] is not None)
            med = ttas[len(ttas) // 2] if ttas else None
            served = max(a["served"] for a in det)
            rules = sorted(set(sum((a["rules"] for a in det), [])))
            print("  %-18s %5d %7.2f %9s %10s %8s %9.3f  %s" % (k, len(det), rec, "", "", fmt_t(med),
                                                              served, ",".join(rules)))


if __name__ == "__main__":
    main()
