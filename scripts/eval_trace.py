#!/usr/bin/env python3
"""Scores the tracer on simulated worlds over many seeds (issue 6's quality check).

For each scenario and seed: `moat simulate`, a fresh data directory, `moat import`
of parties, principals, relations, orders, events and reports, then `moat eval
--json` (the one command that reads truth.json; the tracer never does). Per
scenario it prints, over the seeds where a leaker has at least --min-reports
genuine reports in the default case:

  rank1+sig   the true leaker ranked first among principal suspects and
              significant (Holm-corrected p < alpha); for scenarios with two
              leakers, each leaker counted on its own, and "both" = seeds where
              every leaker was found significant (at any rank)
  found       the leaker significant at any rank
  accused     significant suspects that are no attack's principal or party
              (false accusations), summed over seeds; for the clean scenario the
              number of seeds with any significant accusation at all

With --compare-priors every world is also traced with `moat eval --no-priors`
(equal weights for every candidate instead of detector alerts as priors) and
both tables are printed, the same worlds side by side.

usage: eval_trace.py --moat BIN [--seeds 5000-5099] [--scenarios a,b] [--jobs 2]
                     [--work DIR] [--min-reports 5] [--prior-share S]
                     [--compare-priors] [--json]
"""
import argparse
import collections
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile

SCENARIOS = ["cs_insider", "isv_overpull", "courier_leak", "platform_insider",
             "two_leakers", "mixed", "clean"]


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("failed: %s\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    return r.stdout


def one(moat, scenario, seed, scale, work, variants):
    out = os.path.join(work, "%s-%d" % (scenario, seed))
    data = out + ".data"
    env = dict(os.environ, MOAT_LOG_LEVEL="warn")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    try:
        run([moat, "simulate", "--scenario", scenario, "--seed", str(seed), "--scale", scale,
             "--out", out, "--quiet"])
        run([moat, "init", "--data", data])
        for kind in ["parties", "principals", "relations", "orders", "events", "reports"]:
            run([moat, "import", kind, os.path.join(out, kind + ".jsonl"), "--data", data], env=env)
        evs = {name: json.loads(run([moat, "eval", out, "--data", data, "--json"] + args,
                                    env=env))
               for name, args in variants}
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    return {name: summarise(scenario, seed, ev) for name, ev in evs.items()}


def summarise(scenario, seed, ev):
    case = next((c for c in ev["tracer"]["cases"] if c["case"] == "default"), None)
    leakers = case["leakers"] if case else []
    return dict(scenario=scenario, seed=seed,
                reports=case["reports"] if case else 0,
                leakers=[dict(principal=l["principal"], kind=l["kind"], reports=l["reports"],
                              rank=l["rank"], p=l["p_value"], significant=l["significant"],
                              direct=l["direct"]) for l in leakers],
                accused=[dict(principal=a["principal"], party=a["party"], level=a["level"],
                              p=a["p_value"], how=a["how"])
                         for a in (case["false_accusations"] if case else [])])


def seeds_of(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moat", required=True)
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seeds", default="5000-5019")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work")
    ap.add_argument("--min-reports", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--prior-share")
    ap.add_argument("--compare-priors", action="store_true")
    o = ap.parse_args()
    variants = [("detector alerts as priors",
                 ["--prior-share", o.prior_share] if o.prior_share else [])]
    if o.compare_priors:
        variants.append(("no priors (--no-priors)", ["--no-priors"]))
    work = o.work or tempfile.mkdtemp(prefix="moat-evaltrace-")
    os.makedirs(work, exist_ok=True)
    moat = os.path.abspath(o.moat)
    jobs = [(sc, seed) for sc in o.scenarios.split(",") for seed in seeds_of(o.seeds)]
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=o.jobs) as ex:
        futs = [ex.submit(one, moat, sc, seed, o.scale, work, variants) for sc, seed in jobs]
        for f in futs:
            try:
                results.append(f.result())
            except RuntimeError as e:
                sys.exit(str(e))
    if o.json:
        print(json.dumps(results, indent=1))
        return
    for name, _ in variants:
        if len(variants) > 1:
            print("%s:" % name)
        table([r[name] for r in results], o.min_reports)
        if len(variants) > 1:
            print()


def table(results, min_reports):
    by = collections.OrderedDict()
    for r in results:
        by.setdefault(r["scenario"], []).append(r)
    print("%-17s %5s %9s %10s %7s %6s %8s %s" % ("scenario", "seeds", "eligible", "rank1+sig",
                                               "found", "both", "accused", "median p (leaker)"))
    for sc, rs in by.items():
        if sc == "clean":
            bad = sum(1 for r in rs if r["accused"])
            print("%-17s %5d %9s %10s %7s %6s %8d  seeds with any significant accusation: %d/%d" % (
                sc, len(rs), "-", "-", "-", "-", sum(len(r["accused"]) for r in rs), bad, len(rs)))
            continue
        elig = [r for r in rs if r["leakers"] and
                all(l["reports"] >= min_reports for l in r["leakers"])]
        ls = [l for r in elig for l in r["leakers"]]
        r1 = sum(1 for l in ls if l["rank"] == 1 and l["significant"])
        found = sum(1 for l in ls if l["significant"])
        both = sum(1 for r in elig if all(l["significant"] for l in r["leakers"]))
        ps = sorted(l["p"] for l in ls if l["p"] is not None)
        med = ps[len(ps) // 2] if ps else float("nan")
        multi = any(len(r["leakers"]) > 1 for r in elig)
        print("%-17s %5d %9d %10s %7s %6s %8d  %.3g" % (
            sc, len(rs), len(elig),
            "%d/%d" % (r1, len(ls)), "%d/%d" % (found, len(ls)),
            "%d/%d" % (both, len(elig)) if multi else "-",
            sum(len(r["accused"]) for r in elig), med))
        kinds = collections.Counter()
        kfound = collections.Counter()
        for l in ls:
            kinds[l["kind"]] += 1
            kfound[l["kind"]] += l["significant"]
        if len(kinds) > 1:
            print("  " + ", ".join("%s %d/%d" % (k, kfound[k], n) for k, n in kinds.items()))


if __name__ == "__main__":
    main()
