"""REST load test: POST /score for one customer at a fixed rate from a load generator on loopback.

    python benchmarks/bench_rest.py                       # one customer's lines, 50 requests/s for 30 s
    python benchmarks/bench_rest.py --payload features --rate 20 --seconds 30
    python benchmarks/bench_rest.py --workers 2           # two uvicorn worker processes
    python benchmarks/bench_rest.py --in-process 1        # no server: Service.score_many on batches of 1 request

Sets up a data dir with the main job (demo log, quick training, a batch run) unless it exists,
starts `propensity serve` as a real uvicorn process, warms it up (the first request for an as_of
compiles the feature SQL), then sends requests open-loop on a fixed schedule (each request leaves at
its planned time, whatever the earlier ones are doing) and stops by itself. Latency is measured per
request from send to full response.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "out" / "rest"


def customer_features(data_dir: Path, customer: str, as_of: str) -> list[dict]:
    from features.build import build_features
    from features.store import store_path
    from features.transactions import open_store_log

    log = open_store_log(store_path(data_dir))
    try:
        row = build_features(log.table, as_of)
    finally:
        log.close()
    row = row[row["customer_id"] == customer].drop(columns=["as_of"])
    return row.astype(object).where(row.notna(), None).to_dict("records")


def customer_lines(data_dir: Path) -> tuple[list[dict], str]:
    """All lines of a typical customer (the median line count among the top 100 of the risk list)."""
    from features.store import connect_store, store_path

    con = connect_store(store_path(data_dir), read_only=True)
    try:
        as_of = con.execute("SELECT max(as_of) FROM scores").fetchall()[0][0].date()
        counts = con.execute(
            "SELECT t.customer_id, count(*) n FROM transactions t JOIN (SELECT customer_id FROM scores WHERE as_of = ? ORDER BY rank LIMIT 100) s "
            "USING (customer_id) GROUP BY 1 ORDER BY 2, 1",
            [as_of],
        ).fetchall()
        customer = counts[len(counts) // 2][0]
        lines = con.execute(
            "SELECT customer_id, invoice_id, strftime(ts, '%Y-%m-%dT%H:%M:%S') ts, quantity, unit_price, product_id, country, channel "
            "FROM transactions WHERE customer_id = ?",
            [customer],
        ).df()
    finally:
        con.close()
    return lines.astype(object).where(lines.notna(), None).to_dict("records"), str(as_of)


def in_process(lines: list[dict], as_of: str, n: int, runs: int = 40) -> None:
    """Median and p90 of ``Service.score_many`` on a batch of ``n`` copies of the request (after 5 warm-ups)."""
    from serving.rest.schemas import ScoreRequest
    from serving.rest.service import Service

    service = Service(DATA)
    batch = [ScoreRequest(transactions=lines, as_of=as_of)] * n
    try:
        for _ in range(5):
            service.score_many(batch)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            service.score_many(batch)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        service.close()
    print(
        json.dumps(
            {
                "requests_per_batch": n,
                "lines_per_request": len(lines),
                "runs": runs,
                "p50_ms": round(float(np.percentile(times, 50)), 1),
                "p90_ms": round(float(np.percentile(times, 90)), 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--payload",
        choices=("transactions", "features", "health"),
        default="transactions",
        help="health: GET /health, the load generator's and server's floor",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--in-process", type=int, metavar="N", help="time the scoring thread's work alone on batches of N requests"
    )
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if not (DATA / "mlflow.db").exists():
        subprocess.run(
            [sys.executable, "-m", "propensity.cli", "run", "--data-dir", str(DATA)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    lines, as_of = customer_lines(DATA)
    if args.in_process:
        return in_process(lines, as_of, args.in_process)
    if args.payload == "features":
        payload = json.dumps(
            {"as_of": as_of, "features": customer_features(DATA, lines[0]["customer_id"], as_of)}
        ).encode()
    else:
        payload = json.dumps({"as_of": as_of, "transactions": lines}).encode()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "propensity.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(DATA),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=url, timeout=10) as warm:
            for _ in range(20):
                assert warm.post("/score", content=payload, headers=headers).status_code == 200
        n = int(args.rate * args.seconds)
        clients = [httpx.Client(base_url=url, timeout=10) for _ in range(16)]

        def one(i: int, planned: float):
            delay = planned - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            client = clients[i % len(clients)]
            r = (
                client.get("/health")
                if args.payload == "health"
                else client.post("/score", content=payload, headers=headers)
            )
            return time.perf_counter() - sent, r.status_code, sent - planned

        start = time.perf_counter() + 0.5
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(one, i, start + i / args.rate) for i in range(n)]
            results = [f.result() for f in futures]
        elapsed = time.perf_counter() - start
        latency = np.array([r[0] for r in results]) * 1000
        lag = np.array([r[2] for r in results]) * 1000
        codes = {c: sum(1 for r in results if r[1] == c) for c in {r[1] for r in results}}
        print(
            json.dumps(
                {
                    "payload": args.payload,
                    "workers": args.workers,
                    "requests": n,
                    "rate_target": args.rate,
                    "rate_achieved": round(n / elapsed, 1),
                    "lines_per_request": len(lines),
                    "status_codes": codes,
                    "p50_ms": round(float(np.percentile(latency, 50)), 1),
                    "p90_ms": round(float(np.percentile(latency, 90)), 1),
                    "p99_ms": round(float(np.percentile(latency, 99)), 1),
                    "max_ms": round(float(latency.max()), 1),
                    "send_lag_p99_ms": round(float(np.percentile(lag, 99)), 1),
                },
                indent=2,
            )
        )
        for c in clients:
            c.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
