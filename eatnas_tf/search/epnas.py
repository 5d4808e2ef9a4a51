"""EPNAS (Zhou et al.): progressive search with a REINFORCE policy under soft resource
constraints, as `--strategy=epnas` of the search command.

    heads ← N random architectures (or the seed architectures)
    for episode e:
        for step t in 0..T-1:
            for branch n in 0..N-1:                     # "N parallel branches"
                a ~ π(·|heads[n]);  X ← a(heads[n])     # scale, then insert/remove
                P ← short high-LR training of X (performance prediction), weights from
                    the sharing dictionary;  r ← P × Π V(U_i)          (Eq. 2, 3)
                heads[n] ← X                             # progressive: keep the change
            dictionary ← best weights per (layer, op) of this step
        REINFORCE on the episode's N×T (action, return-to-go − b_t)
        heads ← the episode's top-N models by reward   ("select top 8 models from each
                                                         episode to initialize the next")

One candidate is one (branch, step); the runner evaluates them one at a time in branch
order, which gives exactly the paper's batch of N per step. Everything the strategy
decides is a function of its seeded RNG and the observed records: the policy samples with
that RNG, its updates are deterministic on CPU, the dictionary stores candidate ids, and
measured latencies are cached in the run directory, so a resumed search replays to the
same proposals. `state_dict()` carries the baseline and the policy's fingerprint; its
weights and Adam slots are the state file `policy.json` (`state_files()`), which the
runner writes to `DIR/epnas/`. The strategy itself writes nothing: the dictionary's
weights for a child travel in `Proposal.inherited_weights`.

Settings: `eatnas_tf.epnas.config.EpnasConfig` (`options` of `make_strategy`; the
search command's flags `--constraint`, `--epnas_*` are in `epnas.flags`). The ranking of
the final models (top-k) is by whether every constraint holds, then by reward.
"""

from __future__ import annotations

import collections
import os
import random
from typing import Any, Deque, Dict, List, Optional

import numpy as np

from eatnas_tf.arch import codec
from eatnas_tf.epnas import config as epnas_config
from eatnas_tf.epnas import constraints as C
from eatnas_tf.epnas.actions import ActionSpace
from eatnas_tf.epnas.policy import MovingAverageBaseline, Policy, returns_to_go
from eatnas_tf.epnas.sharing_dict import SharingDict, WeightsCache
from eatnas_tf.record import CandidateRecord
from eatnas_tf.search.strategy import Proposal, SearchConfig, Strategy, register

POLICY_FILE = "policy.json"  # under DIR/epnas/, written by the runner


@register("epnas")
class EPNAS(Strategy):

    def __init__(self, space, config: SearchConfig, rng: random.Random,
                 options: Optional[epnas_config.EpnasConfig] = None):
        super().__init__(space, config, rng, options)
        self.opt = options or epnas_config.EpnasConfig()
        # What the policy acts on: the EAT blocks of `space` (`--epnas_space=eat_blocks`),
        # or the paper's Table 2 layer lists under `space`'s input and classes (`table2`).
        self.layer_space = None
        self._policy_cls, dict_cls = Policy, SharingDict
        if self.opt.space == "table2":
            from eatnas_tf.epnas.table2 import actions as t2_actions
            from eatnas_tf.epnas.table2 import policy as t2_policy
            from eatnas_tf.epnas.table2 import sharing as t2_sharing

            self.layer_space = self.opt.table2_space(space.macro)
            self.aspace = t2_actions.Table2ActionSpace(self.layer_space)
            self._policy_cls, dict_cls = t2_policy.Table2Policy, t2_sharing.Table2SharingDict
        else:
            self.aspace = ActionSpace(space, self.opt.mode)
        self.policy_seed = rng.randrange(2 ** 31)
        self._policy: Optional[Policy] = None
        self.baseline = MovingAverageBaseline(self.opt.baseline_decay)
        self.sharing = (dict_cls(space.macro, self.opt.dict_per_key)
                        if config.inherit and self.opt.share else None)
        self._weights: Optional[WeightsCache] = None
        self._latency = None
        self.episode = 0
        self._episode_start = 0
        self.heads: Optional[List[Any]] = None
        self._rows: List[Dict[str, Any]] = []   # this episode: one per observed candidate
        self._step_rows: List[Dict[str, Any]] = []
        self._pending: Deque[Dict[str, Any]] = collections.deque()
        self._history: List[Dict[str, Any]] = []
        self._updates: List[Dict[str, float]] = []
        self._policy_written: Optional[int] = None  # policy updates in the last file
        self._rewards: Dict[int, Dict[str, Any]] = {}

    # -- run directory (dictionary donors' weights, latency cache) ------------------------
    def bind(self, context) -> None:
        """Reads donors' weights through the run's weight files (`context.weights_path`)."""
        super().bind(context)
        self._weights = WeightsCache(context.weights_path)

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = self._policy_cls(self.aspace, seed=self.policy_seed,
                                  learning_rate=self.opt.policy_lr,
                                  entropy_weight=self.opt.entropy_weight)
        return self._policy

    # -- limits ---------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return min(self.config.max_candidates, self.opt.max_candidates)

    def finished(self) -> bool:
        return len(self.records) >= self.total

    # -- proposals ------------------------------------------------------------------------
    def _initial_heads(self) -> List[Any]:
        n = self.opt.branches
        sampler = self.layer_space or self.space
        if self.config.seed_archs:
            basics = [
                codec.parse_arch(a, **self.space.arch_defaults()) for a in self.config.seed_archs
            ]
            if self.layer_space is not None:
                basics = [self.layer_space.validate(a) for a in basics]
            return [basics[i % len(basics)] for i in range(n)]
        return [sampler.sample(self.rng) for _ in range(n)]

    def _next_heads(self) -> List[Any]:
        """The episode's top-N distinct models by reward (failed ones excluded)."""
        ok = [r for r in self._rows if r["ok"]]
        ok.sort(key=lambda r: (-r["reward"], r["id"]))
        seen, out = set(), []
        for r in ok:
            if r["hash"] not in seen:
                seen.add(r["hash"])
                out.append(r["arch"])
        if not out:
            return list(self.heads)
        return [out[i % len(out)] for i in range(self.opt.branches)]

    def propose_batch(self, k: int) -> List[Proposal]:
        """Up to `k` branches of the current step at once (`--parallel`): a step's N
        proposals depend only on the heads, the policy and the dictionary, which change
        only when a step ends, so a batch never crosses a step boundary."""
        done = len(self.records) + len(self._pending)
        left_in_step = self.opt.branches - (done - self._episode_start) % self.opt.branches
        return self._propose_up_to(min(k, left_in_step, self.total - done))

    def propose(self) -> Optional[Proposal]:
        done = len(self.records) + len(self._pending)
        if done >= self.total:
            return None
        k = done - self._episode_start
        if self.heads is None:
            self.heads = self._initial_heads()
        n, t = k % self.opt.branches, k // self.opt.branches
        parent_arch = self.heads[n]
        action, decision, child = self.policy.sample(parent_arch, self.rng)
        weights, shared = self._materialize(child)
        info = {"episode": self.episode, "step": t, "branch": n, "action": action.describe(),
                "from": codec.to_text(parent_arch)}
        if shared:
            info["dictionary"] = shared
        self._pending.append({"n": n, "t": t, "decision": decision, "arch": child})
        # Performance prediction (§4.1): LR 0.5, early stop, and the paper's Nesterov momentum.
        overrides = ({"learning_rate": self.opt.predict_lr, "nesterov": True}
                     if self.opt.predict else {})
        return Proposal(child, inherited_weights=weights, origin="epnas",
                        epochs=self.opt.predict_epochs if self.opt.predict else None,
                        train_overrides=overrides, info=info)

    def _materialize(self, child):
        """The child's weights from the dictionary: (weights, summary) or (None, None)."""
        if self.sharing is None or self._weights is None or not len(self.sharing):
            return None, None
        weights, summary = self.sharing.materialize(child, self._weights)
        if not weights:
            return None, None
        return weights, summary

    # -- rewards --------------------------------------------------------------------------
    def usage(self, arch, record: CandidateRecord) -> Dict[str, float]:
        """The resource usages the constraints read (records' params / madds; compute
        intensity from `arch.cost`'s bytes model; latency predicted from the layer table, or
        measured on the whole model and cached: `EpnasConfig.latency`)."""
        metrics = {c.metric for c in self.opt.constraints}
        cost = self.space.cost(arch)
        u = {"params": float(record.params or cost.params),
             "madds": float(record.madds or cost.madds),
             "intensity": float(cost.compute_intensity)}
        if "latency" in metrics:
            u["latency"] = self._latency_of(arch)
        return u

    def _latency_of(self, arch) -> float:
        if self._latency is None:
            cache_dir = (self.context.cache_dir
                         if self.context is not None and self.context.cache_dir else None)
            if self.opt.latency == "measure":
                from eatnas_tf.epnas.latency import LatencyCache

                path = os.path.join(cache_dir, "latency.json") if cache_dir else None
                self._latency = LatencyCache(self.space.macro, path, self.opt.latency_threads,
                                             self.opt.latency_runs)
            else:
                self._latency = self._predictor(cache_dir)
        return self._latency(arch)

    def _predictor(self, cache_dir: Optional[str]):
        """arch -> predicted ms: over the search's latency table, else over a table of this
        host (fp32, `latency_threads`) grown on demand in the run directory."""
        from eatnas_tf.latency import config as latency_config

        cfg = self.config.latency
        if cfg is None:
            if cache_dir is None:
                import tempfile

                cache_dir = tempfile.mkdtemp(prefix="epnas_latency_")
            os.makedirs(cache_dir, exist_ok=True)
            cfg = latency_config.LatencyConfig.from_table(
                os.path.join(cache_dir, "latency_table.json"), "fp32", self.opt.latency_threads)
        macro = self.space.macro
        return lambda arch: latency_config.predict_ms(cfg, arch, macro)

    def observe(self, record: CandidateRecord) -> None:
        super().observe(record)
        if not self._pending:
            raise RuntimeError("epnas: observe() without a pending proposal")
        p = self._pending.popleft()
        ok = record.ok and record.val_acc is not None
        usage = self.usage(p["arch"], record)
        r = C.reward(record.val_acc if ok else None, usage, self.opt.constraints)
        sat = ok and C.all_satisfied(usage, self.opt.constraints)
        row = {"id": record.id, "n": p["n"], "t": p["t"], "ok": ok, "reward": r,
               "satisfied": sat, "arch": p["arch"], "hash": record.hash,
               "val_acc": record.val_acc, "decision": p["decision"],
               "usage": usage}
        self._rows.append(row)
        self._step_rows.append(row)
        self._rewards[record.id] = {"reward": r, "satisfied": sat}
        if ok:
            self.heads[p["n"]] = p["arch"]
        if p["n"] == self.opt.branches - 1 or self.finished():
            self._end_step()
        if p["n"] == self.opt.branches - 1 and p["t"] == self.opt.steps - 1:
            self._end_episode()

    def _end_step(self) -> None:
        rows, self._step_rows = self._step_rows, []
        if self.sharing is not None:
            for r in rows:
                if r["ok"]:
                    self.sharing.add(r["arch"], r["id"], r["val_acc"])
        ok = [r for r in rows if r["ok"]]
        accs = [r["val_acc"] for r in ok]
        rew = [r["reward"] for r in rows]
        self._history.append({
            "step": len(self._history), "episode": self.episode, "t": rows[0]["t"],
            "candidates": len(self.records), "branches": len(rows),
            "satisfied_frac": sum(r["satisfied"] for r in rows) / len(rows),
            "mean_reward": float(np.mean(rew)), "max_reward": float(np.max(rew)),
            "mean_acc": float(np.mean(accs)) if accs else None,
            "std_acc": float(np.std(accs)) if accs else None,
            "best_acc": float(np.max(accs)) if accs else None,
            "median_madds": float(np.median([r["usage"]["madds"] for r in rows])),
            "failed": len(rows) - len(ok)})

    def _end_episode(self) -> None:
        N, T = self.opt.branches, self.opt.steps
        by_branch: Dict[int, List[Dict[str, Any]]] = {}
        for r in self._rows:
            by_branch.setdefault(r["n"], []).append(r)
        decisions, returns, steps = [], [], []
        for n in sorted(by_branch):
            rows = sorted(by_branch[n], key=lambda r: r["t"])
            for r, g in zip(rows, returns_to_go([r["reward"] for r in rows])):
                decisions.append(r["decision"])
                returns.append(g)
                steps.append(r["t"])
        means = {
            t: float(np.mean([g for g, s in zip(returns, steps) if s == t])) for t in set(steps)
        }
        adv = [g - (self.baseline.get(t) if self.baseline.get(t) is not None else means[t])
               for g, t in zip(returns, steps)]
        for t, m in sorted(means.items()):
            self.baseline.update(t, m)
        stats = {}
        for _ in range(self.opt.policy_updates):
            stats = self.policy.update(decisions, adv, N)
        stats.update(episode=self.episode, mean_return=float(np.mean(returns)),
                     mean_abs_adv=float(np.mean(np.abs(adv))))
        self._updates.append(stats)
        self.heads = self._next_heads()
        self._rows = []
        self.episode += 1
        self._episode_start = len(self.records)
        del T

    # -- results --------------------------------------------------------------------------
    def history(self) -> List[Dict[str, Any]]:
        return list(self._history)

    def topk(self, k: Optional[int] = None) -> List[CandidateRecord]:
        """Constraint-satisfying models first, then by reward (distinct architectures)."""
        k = k or self.config.topk
        seen, out = set(), []
        ok = [r for r in self.records if r.ok and r.id in self._rewards]

        def key(r):
            return (not self._rewards[r.id]["satisfied"], -self._rewards[r.id]["reward"], r.id)

        for r in sorted(ok, key=key):
            if r.hash not in seen:
                seen.add(r.hash)
                out.append(r)
        return out[:k]

    def live_ids(self) -> List[int]:
        """Dictionary donors and this step's candidates (not in the dictionary yet)."""
        live = set(self.sharing.cids()) if self.sharing is not None else set()
        live |= {r["id"] for r in self._step_rows}
        return sorted(live)

    def summary(self) -> Dict[str, Any]:
        best = self.topk(1)
        return {"strategy": self.name, "observed": len(self.records), "episode": self.episode,
                "options": self.opt.describe(), "policy_updates": self._updates,
                "policy_fingerprint": self._policy.fingerprint() if self._policy else None,
                "baseline": self.baseline.state()["values"],
                "dictionary": self.sharing.state() if self.sharing is not None else None,
                "steps": [{k: v for k, v in h.items()} for h in self._history],
                "best": ({"id": best[0].id, "arch": best[0].arch,
                          **self._rewards[best[0].id]} if best else None)}

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Episode, baseline and the policy's fingerprint; the policy's arrays are in the
        state file `policy.json` (`state_files`)."""
        out: Dict[str, Any] = {"episode": self.episode, "baseline": self.baseline.state(),
                               "policy_seed": self.policy_seed}
        if self._policy is not None:
            st = {k: v for k, v in self._policy.state_dict().items() if k != "arrays"}
            out["policy"] = dict(st, file=POLICY_FILE)
        return out

    def state_files(self) -> Dict[str, Any]:
        """`policy.json` (weights + Adam slots) whenever the policy was updated."""
        if self._policy is None or self._policy_written == self._policy.updates:
            return {}
        self._policy_written = self._policy.updates
        return {POLICY_FILE: self._policy.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restores the policy (weights + Adam slots) and the baseline, e.g. to continue a
        search from `state.json` when its records are not replayed."""
        if "baseline" in state:
            self.baseline.load(state["baseline"])
        pol = state.get("policy")
        if pol:
            if "arrays" not in pol:
                pol = self.context.read_file(os.path.basename(pol["file"]))
            self.policy.load_state_dict(pol)
