"""Auto-router: pick ``gpt-4o``, ``o1-mini`` or ``o1-preview`` for a chat request.

Pure and deterministic: no model call, no network, no clock.  The request text (its head and
tail only, so long pastes cost a bounded time) is read once into features
(`gateway.routing.features`: its words and the hand signals of
`gateway.routing.signals`), and a linear model learned from labeled prompts
(`gateway.routing.linear`, weights in ``weights.json`` next to this module, read once at import
like code) gives the probability of each routing class:

* ``general`` (writing, chat, knowledge, extraction): ``gpt-4o``;
* ``stem`` (everyday coding, school and college maths): ``gpt-4o`` or ``o1-mini``;
* ``hard-stem`` (competition maths, hard algorithms): ``o1-mini`` or ``o1-preview``;
* ``hard-science`` (physics, chemistry, engineering, finance problems): ``o1-preview``.

:class:`~gateway.config.RoutingPolicy` thresholds map them to a model: ``preview_model`` when
P(hard-science) >= ``preview_threshold``, else ``mini_model`` when the score, 1 - P(general),
is >= ``mini_threshold``, else ``general_model`` (OpenAI's o1 launch guidance). A policy that
leaves a threshold unset gets the one tuned with the weights: the most prompts routed to an
acceptable model on sources left out of training, at no more than 0.35 of the cost of sending
everything to o1-preview.

Every :class:`Decision` says why: the class probabilities, the strongest evidence (words and
signals), the hand signals and the threshold that chose.  :func:`step_down` moves a decision
one model cheaper once a team has spent ``RoutingPolicy.step_down_at`` of its budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from operator import itemgetter
from typing import Any, Final

from gateway.config import GPT_4O, O1_MINI, O1_PREVIEW, RoutingPolicy
from gateway.routing import linear
from gateway.routing.features import Features, extract

__all__ = [
    "CLASSES",
    "DEFAULT",
    "MODEL",
    "Decision",
    "decide",
    "route",
    "route_text",
    "step_down",
    "thresholds",
]

DEFAULT: Final = RoutingPolicy(
    lineup="o1-2024", general_model=GPT_4O, mini_model=O1_MINI, preview_model=O1_PREVIEW,
    general_effort=(), mini_effort=(), preview_effort=(),
)  # fmt: skip
#: The routing classes, as the weights file names them.
CLASSES: Final = ("general", "stem", "hard-stem", "hard-science")
MODEL: Final = linear.load(resources.files(__package__).joinpath("weights.json").read_bytes())
if MODEL.classes != CLASSES:
    raise ValueError(f"router weights: classes {MODEL.classes}, expected {CLASSES}")
_REASON_CHARS = 80
_PROBABILITY: Final = itemgetter(1)  # of a (class, probability) item; a C call, not a frame


@dataclass(frozen=True, slots=True)
class Decision:
    model: str
    score: float
    domain: str
    reasons: tuple[str, ...]
    # The reasoning effort the model is asked for ("": its default).
    effort: str = ""


def effort_in_band(
    levels: tuple[str, ...] | None, value: float, low: float, high: float
) -> tuple[str, str]:
    """(effort, reason): the role's efforts spread evenly over its band [low, high] of the
    value that chose it, least first; ("", "") for a role without efforts."""
    if not levels:
        return "", ""
    if len(levels) == 1:
        return levels[0], f"effort {levels[0]}"
    span = high - low
    index = int((value - low) / span * len(levels)) if span > 0 else len(levels) - 1
    index = max(0, min(len(levels) - 1, index))
    return levels[index], (
        f"effort {levels[index]}: {value:.2f} in part {index + 1} of {len(levels)}"
        f" of [{low:g}, {high:g}]"
    )


def _domain(top: str, features: Features) -> str:
    """The subject a reason and the metrics name: the hand rules' when they saw a technical
    one, else what the winning class implies."""
    if top == "general":
        return "general"
    hand = features.signals
    if hand.domain != "general":
        return hand.domain
    if top == "hard-science":
        return "science"
    return "code" if hand.code_evidence >= 2.0 else "math"


def _short(reason: str) -> str:
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 3] + "..."


def thresholds(policy: RoutingPolicy) -> tuple[float, float]:
    """(mini, preview): the policy's thresholds, or those tuned with the weights where unset."""
    mini = MODEL.mini_threshold if policy.mini_threshold is None else policy.mini_threshold
    preview = policy.preview_threshold
    return mini, MODEL.preview_threshold if preview is None else preview


def decide(features: Features, policy: RoutingPolicy, turns: int = 1) -> Decision:
    """The decision for a text's features under `policy`."""
    scores = MODEL.score(features)
    p = scores.probabilities
    hard_science = p["hard-science"]
    score = round(1.0 - p["general"], 4)
    mini, preview = thresholds(policy)
    if hard_science >= preview:
        model = policy.preview_model
        why = f"P(hard-science) {hard_science:.2f} >= {preview:g}"
        effort, effort_why = effort_in_band(policy.preview_effort, hard_science, preview, 1.0)
    elif score >= mini:
        model = policy.mini_model
        why = f"score {score:.2f} >= {mini:g}"
        effort, effort_why = effort_in_band(policy.mini_effort, score, mini, 1.0)
    else:
        model = policy.general_model
        why = f"score {score:.2f} < {mini:g}"
        effort, effort_why = effort_in_band(policy.general_effort, score, 0.0, mini)
    first, second = sorted(p.items(), key=_PROBABILITY, reverse=True)[:2]
    domain = _domain(scores.top, features)
    reasons = [
        f"domain: {domain}",
        f"classes: {first[0]} {first[1]:.2f}, {second[0]} {second[1]:.2f}",
    ]
    evidence = [f"'{word}'" for word in scores.words]
    if scores.signal:
        evidence.append(scores.signal)
    if evidence:
        reasons.append(_short(f"evidence for {scores.top}: " + ", ".join(evidence)))
    reasons += features.signals.reasons
    if turns > 1:
        reasons.append(f"conversation: {turns} user turns")
    reasons.append(f"{why}: {model}")
    if effort_why:
        reasons.append(effort_why)
    return Decision(model, score, domain, tuple(reasons), effort)


def route_text(text: str, policy: RoutingPolicy = DEFAULT) -> Decision:
    """Route a single prompt text."""
    return decide(extract(text, policy.scan_chars), policy)


def _content_text(content: Any) -> tuple[str, bool]:
    """(text, has_image) for a message ``content``: a string or a list of content parts."""
    if isinstance(content, str):
        return content, False
    if not isinstance(content, Iterable) or isinstance(content, bytes | Mapping):
        return "", False
    parts: list[str] = []
    image = False
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, Mapping):
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif kind in ("image_url", "image", "input_image"):
                image = True
    return "\n".join(parts), image


def route(messages: list[dict[str, Any]], policy: RoutingPolicy = DEFAULT) -> Decision:
    """Route a chat request from the text of its user messages (the last one weighted most)."""
    texts: list[str] = []
    image = False
    for msg in messages:
        # A JSON body's messages are dicts: the exact type test spares the ABC check.
        if not (type(msg) is dict or isinstance(msg, Mapping)) or msg.get("role") != "user":
            continue
        text, has_image = _content_text(msg.get("content"))
        image = image or has_image
        texts.append(text)
    if image or not texts:
        effort, why = effort_in_band(policy.general_effort, 0.0, 0.0, 1.0)
        reasons = ("images" if image else "no user text", *((why,) if why else ()))
        return Decision(policy.general_model, 0.0, "general", reasons, effort)
    last = texts[-1]
    # Earlier turns add context, but only the tail of them and with less weight than the last.
    earlier = "\n".join(texts[:-1])
    budget = policy.scan_chars // 2
    if len(earlier) > budget:
        earlier = earlier[-budget:]
    combined = f"{earlier}\n{last}" if earlier else last
    decision = decide(extract(combined, policy.scan_chars), policy, turns=len(texts))
    if earlier:
        alone = decide(extract(last, policy.scan_chars), policy, turns=len(texts))
        # The last message decides unless the context points to a stronger model.
        rank = {policy.general_model: 0, policy.mini_model: 1, policy.preview_model: 2}
        if rank.get(alone.model, 0) >= rank.get(decision.model, 0) or alone.domain != "general":
            return alone
    return decision


def step_down(decision: Decision, policy: RoutingPolicy, spent_share: float) -> Decision:
    """Move ``decision`` one model cheaper once ``spent_share`` of the budget is used up.

    ``preview_model`` becomes ``mini_model`` and ``mini_model`` becomes ``general_model``;
    score and domain are kept so logs still show what the request would have needed.
    """
    if policy.step_down_at is None or spent_share < policy.step_down_at:
        return decision
    cheaper = {
        policy.preview_model: (policy.mini_model, policy.mini_effort),
        policy.mini_model: (policy.general_model, policy.general_effort),
    }
    target, levels = cheaper.get(decision.model, (decision.model, None))
    if target == decision.model:
        return decision
    # The request needed more than the cheaper model: it gets that model's most effort.
    effort = levels[-1] if levels else ""
    reason = (
        f"budget: {spent_share:.0%} spent (step-down at {policy.step_down_at:.0%}): "
        f"{decision.model} -> {target}" + (f" at effort {effort}" if effort else "")
    )
    return Decision(target, decision.score, decision.domain, (*decision.reasons, reason), effort)
