"""Load test: N concurrent clients asking `tanya serve` over loopback for a fixed time.

Each client is a thread with its own keep-alive HTTP connection, asking `POST /api/ask` in a loop
until the deadline (a bounded loop, no retries). A response counts as an error unless it is a 200 whose
every citation holds `text[start:end] == sentence` against the document's own text. The server's RSS
is sampled every second from /proc. Usage (figures in benchmarks/README.md):

    python benchmarks/load.py [--clients 16] [--seconds 60] [--home HOME]

Without --home it indexes the FacQA passages (eval/data) into .cache/load-home first. Writes
benchmarks/results/load.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


@dataclass
class LoadResult:
    clients: int
    seconds: float
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def rss_growth_mb(self) -> float:
        """Median RSS of the run's last third minus its first third's (warm-up included in neither)."""
        samples = [mb for t, mb in self.rss_mb]
        third = max(1, len(samples) // 3)
        return statistics.median(samples[-third:]) - statistics.median(samples[:third])

    def summary(self) -> dict:
        return {"clients": self.clients, "seconds": self.seconds, "requests": self.requests, "errors": self.errors,
                "throughput_per_s": round(self.requests / self.seconds, 1),
                "p50_ms": round(self.percentile(0.50), 1), "p95_ms": round(self.percentile(0.95), 1),
                "p99_ms": round(self.percentile(0.99), 1), "max_ms": round(max(self.latencies_ms, default=0), 1),
                "rss_start_mb": round(self.rss_mb[0][1], 1) if self.rss_mb else None,
                "rss_end_mb": round(self.rss_mb[-1][1], 1) if self.rss_mb else None,
                "rss_max_mb": round(max(mb for _, mb in self.rss_mb), 1) if self.rss_mb else None,
                "rss_growth_mb": round(self.rss_growth_mb(), 1) if self.rss_mb else None}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def citation_problem(answer: dict, texts: dict[str, str]) -> str | None:
    for c in answer.get("citations", []):
        text = texts.get(c["doc_id"])
        if text is None or text[c["start"] : c["end"]] != c["sentence"]:
            return f"citation {c['n']} of {answer.get('question', '')[:60]!r} does not match its document"
    return None


def run_load(url: str, questions: list[str], clients: int = 16, seconds: float = 60.0,
             server_pid: int | None = None) -> LoadResult:
    with httpx.Client(base_url=url, timeout=60) as client:
        ids = [d["doc_id"] for d in client.get("/api/documents").json()["documents"]]
        texts = {i: client.get(f"/api/documents/{i}").json()["text"] for i in ids}
    result = LoadResult(clients, seconds)
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds

    def client_loop(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            i = n
            while time.perf_counter() < deadline:
                question = questions[i % len(questions)]
                i += clients
                began = time.perf_counter()
                problem = None
                try:
                    response = http.post("/api/ask", json={"question": question})
                    if response.status_code != 200:
                        problem = f"HTTP {response.status_code}: {response.text[:200]}"
                    else:
                        problem = citation_problem(response.json(), texts)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    result.requests += 1
                    result.latencies_ms.append(elapsed)
                    if problem:
                        result.errors += 1
                        if len(result.error_samples) < 10:
                            result.error_samples.append(problem)

    def sample_rss() -> None:
        while time.perf_counter() < deadline and server_pid is not None:
            result.rss_mb.append((round(time.perf_counter() - start, 2), rss_mb(server_pid)))
            time.sleep(1.0)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    threads.append(threading.Thread(target=sample_rss))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return result


def write_report(result: LoadResult, out: Path, setup: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    (out / "load.json").write_text(json.dumps({"setup": setup, **summary, "rss_mb": result.rss_mb}, indent=1))
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items())
    (out / "load.md").write_text(f"# Load test\n\n{setup}\n\n| | |\n|---|---|\n{rows}\n")
    fig, (lat, mem) = plt.subplots(1, 2, figsize=(11, 4))
    lat.hist(result.latencies_ms, bins=60, color="#4477aa")
    for q, style in ((0.5, "--"), (0.95, "-")):
        lat.axvline(result.percentile(q), color="black", linestyle=style, label=f"p{int(q * 100)} "
                    f"{result.percentile(q):.0f} ms")
    lat.set(xlabel="latency of POST /api/ask (ms)", ylabel="requests",
            title=f"{result.clients} clients, {result.requests} requests, {result.errors} errors")
    lat.legend()
    mem.plot([t for t, _ in result.rss_mb], [mb for _, mb in result.rss_mb], "o-", markersize=3)
    mem.set(xlabel="seconds", ylabel="server RSS (MB)", title="tanya serve memory during the run")
    mem.set_ylim(0, max(mb for _, mb in result.rss_mb) * 1.2)
    fig.tight_layout()
    fig.savefig(out / "load.png", dpi=110)


def facqa_home(home: Path) -> list[str]:
    """Index FacQA's passages into ``home`` (once) and return its valid questions, Indonesian and English."""
    from eval import facqa
    from rag.tanya import Tanya

    docs, items = facqa.load()
    tanya = Tanya.open(home)
    if tanya.counts()[0] < len(docs):
        tanya.add(docs, progress=True)
    tanya.close()
    english = [json.loads(line)["question_en"] for line in (REPO / "eval/data/facqa_en.jsonl").read_text().splitlines()]
    return [it.question for it in items["valid"]] + english


def main() -> None:
    import subprocess

    from index.onnx_embedder import describe_instruction_sets
    from tests.helpers import running_server_process

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warm-up", type=float, default=40.0, help="seconds of load before the measured run")
    parser.add_argument("--home", type=Path, default=REPO / ".cache" / "load-home")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    questions = facqa_home(args.home)
    with running_server_process(args.home, args.home.parent / "load-serve.log") as (url, proc):
        # Warm-up at full concurrency: the server's RSS grows for ~40 s as its worker threads get their
        # allocator arenas and SQLite connections, then stays flat (measured over 150 s; README).
        run_load(url, questions[::7], args.clients, args.warm_up, proc.pid)
        result = run_load(url, questions, args.clients, args.seconds, proc.pid)
    cores = os.cpu_count()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    setup = (f"{args.clients} clients for {args.seconds:.0f} s (after {args.warm_up:.0f} s of warm-up) against "
             f"`tanya serve` on 127.0.0.1 ({cores} cores, {describe_instruction_sets()}, "
             f"clients on the same machine), FacQA index ({len(questions)} questions, Indonesian and English); "
             f"commit {commit.strip()}")
    write_report(result, args.out, setup)
    print(json.dumps(result.summary(), indent=1))
    for sample in result.error_samples:
        print("error:", sample)
    if result.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()

