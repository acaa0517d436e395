"""`meshroute demo`: Istio's Bookinfo traffic tasks replayed through a real Envoy.

It starts a :class:`~meshroute.stack.Stack` (the Bookinfo apps and Envoy on 127.0.0.1, deciding
with the embedded module or with ``meshroute serve``: ``--engine``), then for each step applies the
task's YAML on top of the Bookinfo base (later files replace earlier resources of the same
kind/namespace/name, as ``kubectl apply`` does), sends the requests the Istio task sends to the
ingress, and compares what came back with the outcome istio.io documents (``docs/tasks.md``
§1-§5). The exit code is 1 if any observation contradicts it.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshroute.bookinfo.productpage import REVIEWS_ERROR, reviews_version, served_by, star_colors
from meshroute.bookinfo.services import RATINGS_UNAVAILABLE
from meshroute.envoy.options import DEFAULT_ENGINE, EMBEDDED
from meshroute.procs import ProcessError
from meshroute.stack import Response, Stack

TASKS = os.path.join(os.path.dirname(__file__), "data", "tasks")
# Weighted picks happen in serve or the module and cannot be seeded through HTTP, so shares are
# checked against a tolerance: with 1000 requests a 50 % share has a standard deviation of
# 1.6 pp, and +/-7 pp is 4.4 sigma: a correct split fails the check with probability ~1e-5
# (20 %: 5.5 sigma). The exact binomial tails are checked by
# tests/e2e/test_bookinfo_tasks.py::test_shift_tolerance_is_safe.
SHIFT_REQUESTS = 1000
SHIFT_TOLERANCE_PP = 7.0


class Report:
    """Prints observations with ✓/✗ and remembers whether any contradicted the expectation."""

    def __init__(self) -> None:
        self.failed = 0

    def check(self, ok: bool, observed: str, expected: str) -> None:
        self.failed += not ok
        print(f"    {'✓' if ok else '✗'} {observed}  (expected {expected})")


ERRORS = {REVIEWS_ERROR: "reviews unavailable", RATINGS_UNAVAILABLE: "ratings unavailable"}
FAST = 1.5  # seconds: a page that no fault or timeout slows down


@dataclass(frozen=True)
class Step:
    title: str
    files: tuple[str, ...]
    observe: Callable[[Stack, Report], None]


def describe(r: Response) -> str:
    """One line for a product page: status, time, the reviews/ratings versions, stars or errors."""
    behind = served_by(r.body)[2:]  # after productpage and details
    notes = [f"{r.status} in {r.seconds:.2f}s", " -> ".join(behind) if behind else "reviews call failed"]
    colors = star_colors(r.body)
    notes.append(f"{'/'.join(sorted(colors))} stars" if colors else "no stars")
    notes += [label for text, label in ERRORS.items() if text in r.body]
    return ", ".join(notes)


def _same_page(
    stack: Stack, report: Report, user: str | None, times: int, want: str, expected: str, stars: str = ""
) -> None:
    pages = [stack.get("/productpage", user=user) for _ in range(times)]
    got = collections.Counter(reviews_version(p.body) for p in pages)
    colors = set().union(*(star_colors(p.body) for p in pages))
    ok = (
        all(p.status == 200 for p in pages) and set(got) == {want} and colors == ({stars} if stars else set())
    )
    who = user or "anonymous"
    report.check(ok, f"{who:>9} x{times}: {describe(pages[-1])}; {dict(got)}", expected)


def baseline(stack: Stack, report: Report) -> None:
    _same_page(stack, report, None, 10, "reviews-v1", "reviews-v1 only, never stars")
    _same_page(stack, report, "jason", 5, "reviews-v1", "reviews-v1 only, never stars")
    miss = stack.get("/nope")
    report.check(miss.status == 404, f"GET /nope -> {miss.status}", "404: the bookinfo VS has no such route")


def request_routing(stack: Stack, report: Report) -> None:
    _same_page(stack, report, "jason", 5, "reviews-v2", "reviews-v2, black stars", "black")
    _same_page(stack, report, None, 5, "reviews-v1", "reviews-v1, no stars")
    _same_page(stack, report, "bob", 5, "reviews-v1", "reviews-v1, no stars")


def fault_delay(stack: Stack, report: Report) -> None:
    r = stack.get("/productpage", user="jason")
    ok = r.status == 200 and 5.5 <= r.seconds <= 7.5 and REVIEWS_ERROR in r.body
    expected = f"≈6 s (2 x productpage's 3 s timeout), {REVIEWS_ERROR!r}"
    report.check(ok, f"    jason: {describe(r)}", expected)
    r = stack.get("/productpage")
    ok = r.status == 200 and r.seconds < FAST and reviews_version(r.body) == "reviews-v1"
    report.check(ok, f"anonymous: {describe(r)}", "fast, reviews-v1, no error")


def fault_abort(stack: Stack, report: Report) -> None:
    r = stack.get("/productpage", user="jason")
    ok = (
        r.status == 200
        and r.seconds < FAST
        and RATINGS_UNAVAILABLE in r.body
        and reviews_version(r.body) == "reviews-v2"
    )
    report.check(ok, f"    jason: {describe(r)}", f"immediate, reviews-v2 with {RATINGS_UNAVAILABLE!r}")
    r = stack.get("/productpage")
    ok = r.status == 200 and RATINGS_UNAVAILABLE not in r.body and reviews_version(r.body) == "reviews-v1"
    report.check(ok, f"anonymous: {describe(r)}", "normal page, reviews-v1")


def shift(weights: dict[str, int], requests: int = SHIFT_REQUESTS) -> Callable[[Stack, Report], None]:
    def observe(stack: Stack, report: Report) -> None:
        start = time.monotonic()
        pages = [stack.get("/productpage") for _ in range(requests)]
        got = collections.Counter(reviews_version(p.body) for p in pages)
        bad = sum(p.status != 200 for p in pages)
        took = time.monotonic() - start
        for version in sorted(set(weights) | set(got)):
            share = 100.0 * got[version] / requests
            want = weights.get(version, 0)
            ok = abs(share - want) <= SHIFT_TOLERANCE_PP if 0 < want < 100 else share == want
            expected = f"{want}% ± {SHIFT_TOLERANCE_PP:.0f} pp" if 0 < want < 100 else f"{want}%"
            report.check(ok, f"{version}: {got[version]}/{requests} = {share:.1f}%", expected)
        report.check(bad == 0, f"{requests} pages in {took:.1f}s, {bad} not 200", "every page 200")

    return observe


def slow_ratings(stack: Stack, report: Report) -> None:
    r = stack.get("/productpage")
    ok = r.status == 200 and 1.8 <= r.seconds <= 3.0 and star_colors(r.body) == {"black"}
    report.check(ok, f"anonymous: {describe(r)}", "≈2 s, black stars (reviews-v2 waits for ratings)")


def route_timeout(stack: Stack, report: Report) -> None:
    r = stack.get("/productpage")
    ok = r.status == 200 and 0.9 <= r.seconds <= 1.8 and REVIEWS_ERROR in r.body
    report.check(ok, f"anonymous: {describe(r)}", f"≈1 s (2 x the 0.5 s route timeout), {REVIEWS_ERROR!r}")


TEST_V2 = "virtual-service-reviews-test-v2.yaml"
DELAY_2S = "ratings-delay-2s.yaml"
STEPS = (
    Step("Baseline: Bookinfo with every service on v1 (virtual-service-all-v1)", (), baseline),
    Step("Request routing: jason -> reviews v2", (TEST_V2,), request_routing),
    Step(
        "Fault injection: 7s delay on ratings for jason",
        (TEST_V2, "virtual-service-ratings-test-delay.yaml"),
        fault_delay,
    ),
    Step(
        "Fault injection: HTTP 500 abort on ratings for jason",
        (TEST_V2, "virtual-service-ratings-test-abort.yaml"),
        fault_abort,
    ),
    Step(
        "Traffic shifting: reviews 50% v1 / 50% v3",
        ("virtual-service-reviews-50-v3.yaml",),
        shift({"reviews-v1": 50, "reviews-v3": 50}),
    ),
    Step(
        "Traffic shifting: reviews 100% v3",
        ("virtual-service-reviews-v3.yaml",),
        shift({"reviews-v3": 100}, 20),
    ),
    Step(
        "Traffic shifting: reviews 80% v1 / 20% v2",
        ("virtual-service-reviews-80-20.yaml",),
        shift({"reviews-v1": 80, "reviews-v2": 20}),
    ),
    Step("Request timeouts: reviews v2, ratings delayed 2s", ("reviews-v2.yaml", DELAY_2S), slow_ratings),
    Step(
        "Request timeouts: reviews v2 with a 0.5s timeout, ratings delayed 2s",
        ("reviews-v2-timeout-0.5s.yaml", DELAY_2S),
        route_timeout,
    ),
)


def run(engine: str = DEFAULT_ENGINE) -> int:
    """Start the stack, replay every step, print what was observed. Returns an exit code."""
    started = time.monotonic()
    report = Report()
    decider = "the meshroute module inside Envoy" if engine == EMBEDDED else "meshroute serve (ext_proc)"
    print(f"meshroute demo: starting Bookinfo and Envoy on 127.0.0.1, deciding with {decider} ...")
    try:
        with Stack(engine=engine) as stack:
            print(f"    ingress {stack.ingress_url} (Gateway port 8080), mesh listener :{stack.mesh_port}")
            print(f"    apps {', '.join(f'{k}:{v}' for k, v in stack.plan.items())}")
            print(f"    ready in {time.monotonic() - started:.1f}s; work directory {stack.work}")
            for number, step in enumerate(STEPS):
                print(f"\n[{number}] {step.title}")
                status = stack.apply(os.path.join(TASKS, f) for f in step.files)
                applied = ", ".join(step.files) or "nothing on top of the Bookinfo base"
                print(f"    applied {applied} ({engine} generation {status.get('generation')})")
                step.observe(stack, report)
    except ProcessError as exc:
        print(f"\nmeshroute demo: could not run the stack: {exc}")
        return 1
    except KeyboardInterrupt:
        print("\nmeshroute demo: interrupted; every process stopped")
        return 130
    verdict = (
        "every observation matches istio.io" if not report.failed else f"{report.failed} contradiction(s)"
    )
    print(f"\nmeshroute demo: {verdict} ({time.monotonic() - started:.0f}s)")
    return 1 if report.failed else 0
