"""Heuristic auto-router: pick ``gpt-4o``, ``o1-mini`` or ``o1-preview`` for a chat request.

Pure and deterministic: no model call, no network, no I/O, no clock.  The request text is scored
with a handful of precompiled regular expressions (one pass each, bounded input size) into

* a *domain*: ``general`` (chat, writing, knowledge, extraction), ``code``, ``math`` or
  ``science`` (physics, chemistry, biology, engineering, economics/finance), and
* a *difficulty* score in ``[0, 1]`` (how much multi-step reasoning the request seems to need),

which :class:`Policy` thresholds map to a model (OpenAI's o1 launch guidance):

* ``general`` -> ``gpt-4o``;
* ``code`` / ``math`` -> ``o1-mini`` when difficulty >= ``mini_threshold``, else ``gpt-4o``;
* ``science`` -> ``o1-preview`` when difficulty >= ``preview_threshold``, ``o1-mini`` when
  >= ``mini_threshold``, else ``gpt-4o`` (knowledge questions need no reasoning model).

Every :class:`Decision` carries short human-readable reasons.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["DEFAULT", "Decision", "Policy", "route", "route_text"]

GPT_4O: Final = "gpt-4o"
O1_MINI: Final = "o1-mini"
O1_PREVIEW: Final = "o1-preview"


@dataclass(frozen=True, slots=True)
class Policy:
    """Thresholds mapping (domain, difficulty) to a model. Defaults; a later config sets them."""

    general_model: str = GPT_4O
    mini_model: str = O1_MINI
    preview_model: str = O1_PREVIEW
    #: code/math/science requests at or above this difficulty go to ``mini_model``.
    mini_threshold: float = 0.25
    #: science requests at or above this difficulty go to ``preview_model``.
    preview_threshold: float = 0.45
    #: minimum weighted science-vocabulary evidence for the ``science`` domain.
    science_min_terms: float = 2.0
    #: only this many characters from the head and from the tail of a long text are examined.
    scan_chars: int = 4096


DEFAULT: Final = Policy()


@dataclass(frozen=True, slots=True)
class Decision:
    model: str
    score: float
    domain: str
    reasons: tuple[str, ...]


# --------------------------------------------------------------------------- vocabularies


_TERMS: dict[str, set[str]] = {}  # term -> names of the vocabularies it belongs to


def _words(name: str, *groups: str) -> str:
    """Register whitespace-separated lower-case terms (``_`` means a space) under ``name``."""
    for group in groups:
        for term in group.split():
            _TERMS.setdefault(term.replace("_", " "), set()).add(name)
    return name


def _trie_regex(terms: Iterable[str]) -> re.Pattern[str]:
    """A prefix-factored alternation (fast: one character class test per word start)."""
    trie: dict[str, Any] = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        end = "" in node
        branches = [
            (r"\s+" if ch == " " else re.escape(ch)) + build(sub)
            for ch, sub in sorted(node.items())
            if ch
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            return "(?:" + body + ")?"
        return body

    return re.compile(r"(?<![\w-])" + build(trie) + r"(?![\w-])")


_CODE_FENCE = re.compile(r"```|~~~")
_CODE_SYNTAX = re.compile(
    r"^[ \t]*(?:def|class|import|from\s+\w+\s+import|#include|public|private|static|fn|func"
    r"|let|const|var|async\s+def|return|SELECT|INSERT|CREATE\s+TABLE|package|using\s+namespace)\b"
    r"|=>|->|::|\+\+|&&|\|\||!=|==|\.\w+\(|console\.log|System\.out|printf\(|print\("
    r"|;[ \t]*$|\{[ \t]*$|^[ \t]*\}",
    re.MULTILINE,
)
_CODE_VOCAB = _words(
    "code",
    "python javascript typescript java c++ c# golang rust kotlin swift ruby php sql bash shell",
    "html css react node.js numpy pandas django flask regex regular_expression json_schema",
    "function functions method class recursion recursive algorithm algorithms array arrays",
    "linked_list hash_map hashmap hash_table dictionary binary_tree binary_search_tree",
    "data_structure time_complexity space_complexity big-o stack queue heap trie",
    "dynamic_programming compile compiler runtime debug bug refactor unit_test unit_tests",
    "api endpoint script program source_code snippet variable variables loop string strings",
    "integer_array substring subarray sorted_list dataframe thread threads mutex async",
    "lru_cache cache o(1) o(n) o(log_n) o(n_log_n) implementation implement linear_time",
    "quadratic_time big_o complexity optimize_this",
)
_CODE_VERB = _words(
    "code_verb", "write implement create code develop fix debug refactor optimize optimise complete"
)
_CODE_NOUN = _words(
    "code_noun",
    "function program class method algorithm code query regex api module cli parser",
    "unit_test unit_tests cache data_structure linked_list binary_tree server library endpoint",
    "sql python javascript typescript java c++ rust golang",
)

_LATEX = re.compile(
    r"\$(?![\d.,]+(?:\s|$))[^$\n]{1,200}?\$|\\(?:frac|sqrt|sum|int|prod|lim|cdot|times|le|ge|leq|geq|neq|pi|theta"
    r"|alpha|beta|omega|lambda|infty|binom|log|ln|sin|cos|tan|dot|ddot|mathrm|boxed|left|right)\b"
)
_EQUATION = re.compile(
    r"[=<>\u2264\u2265\u2260]\s*[-\w(\\]|[+*^\u00d7\u00f7] ?[\d(a-z]"
    r"|[\u221a\u2211\u222b\u03c0\u221e\u2248\u00b1\u2202\u2207]"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SCI_NUMBER = re.compile(r"\d\s*(?:[x\u00d7]|\\times)\s*10\s*\^|\d[eE][-+]?\d")
_UNIT = re.compile(
    r"\d\s*(?:m/s\^?2?|km/s|m/s²|cm\^?-?\d?|nm|μm|µm|mm|kg|mol|moles?|kJ|kj|mJ|eV|ev|keV|MeV|GeV"
    r"|J|K|Pa|kPa|MPa|atm|Hz|kHz|MHz|GHz|V|mV|kV|A|mA|Ω|ohms?|W|kW|MW|N|T|rad/s|°C|°K|Å|AU"
    r"|pc|kpc|Mpc|ly|s\^-1|s\^\{-1\}|M)(?![\w])"
    r"|\\mathrm\{\s*~?\s*[a-zA-Z]{1,4}\s*\}|\\AA|\^\{?\\circ\}?\s*\\mathrm\{[CK]\}"
)
_MATH_VOCAB = _words(
    "math",
    "equation equations solve integer integers prime primes divisible divisor divisors",
    "remainder modulo mod gcd lcm factorial probability polynomial polynomials root roots",
    "digit digits triangle triangles circle circles perimeter area radius diameter hypotenuse",
    "angle angles matrix matrices vector vectors derivative integral sequence series",
    "real_numbers complex_number complex_numbers ordered_pairs positive_integer",
    "positive_integers expression simplify evaluate fraction fractions ratio percent",
    "percentage average mean median arithmetic geometric exponent logarithm inequality",
    "parabola quadrant coordinate coordinates vertex vertices sum product quotient",
    "combinatorics permutations combinations congruent similar_triangles square_root",
    "theorem lemma proof differential_equation eigenvalue eigenvalues determinant",
    "converge converges convergence limit asymptote function_f domain range_of",
    "how_many_ways ways_to at_random randomly dice die coin coins deck cards arrangements",
    "arrange choose committee volume cylinder sphere cone cube distance intersection",
    "intersections consecutive right_triangle odd even likely expected_value",
)
_REASONING = _words(
    "reasoning",
    "prove show_that demonstrate_that how_many find_all determine calculate compute",
    "what_is_the_value find_the_value solve_for how_much least greatest smallest largest",
    "maximum minimum maximize minimize step_by_step derive estimate express_your_answer",
    "round_your_answer to_the_nearest in_terms_of what_is_the_probability how_long",
    "how_far how_fast find evaluate simplify how_many_ways how_many_times probability",
)
_PROOF = _words("proof", "prove proof show_that demonstrate_that derive find_all for_all_integers")

# Strong terms: rarely used outside technical science/engineering/economics problems.
_SCI_STRONG = _words(
    "sci_strong",
    # physics
    "velocity acceleration momentum kinetic_energy potential_energy wavelength wavelengths",
    "photon photons electron electrons proton protons neutron neutrons quantum wavefunction",
    "hamiltonian lagrangian eigenstate eigenstates eigen-energies schrodinger schrödinger",
    "entropy enthalpy thermodynamic thermodynamics adiabatic isothermal isobaric carnot",
    "heat_capacity specific_heat ideal_gas boltzmann planck_constant planck avogadro",
    "electric_field magnetic_field electromagnetic capacitor capacitance inductor",
    "inductance resistor resistance voltage coulomb gauss_law faraday maxwell oscillator",
    "harmonic_oscillator damping damped natural_frequency resonance torque angular_momentum",
    "moment_of_inertia friction frictionless incline projectile centripetal gravitational",
    "relativity relativistic lorentz time_dilation speed_of_light spacetime doppler",
    "diffraction interference refraction interferometer optics lens polarization",
    "luminosity bolometric redshift galaxy galaxies white_dwarf neutron_star black_hole",
    "red_giant supernova hubble telescope angular_resolution stellar solar_mass parallax",
    "orbit orbital semiconductor band_gap fermi dopant superconductor nucleus nuclear",
    "radioactive half-life isotope isotopes fission fusion bohr rydberg ionization",
    "spectral spectroscopy emission_spectrum absorption_spectrum mean_free_path",
    "cross_section hydrostatic degenerate blackbody black-body equation_of_motion",
    "hydrogen_atom energy_gap energy_level energy_levels bohr_radius ground_state excited_state",
    "electronic_states significant_figure significant_figures speed_of_sound",
    "hydrogen helium lithium beryllium nitrogen fluorine neon sodium magnesium silicon",
    "phosphorus sulfur chlorine argon potassium calcium",
    # chemistry / materials
    "molecule molecules molecular molar molarity mole_fraction stoichiometry reactant",
    "activation_energy rate_constant arrhenius equilibrium_constant reaction_rate first-order",
    "second-order kinetics catalyst catalysis titration acid base buffer ph oxidation",
    "reduction_potential redox electrochemical electrolyte anode cathode covalent ionic",
    "ionic_bond bond_energy lattice crystal crystalline diffusion diffusivity fick",
    "concentration solubility precipitate enthalpy_of gibbs free_energy orbital orbitals",
    "valence hybridization alkane alkene benzene polymer isomer chirality",
    # biology / medicine (quantitative)
    "enzyme enzymes michaelis-menten allele alleles hardy-weinberg genotype phenotype",
    "mitochondria transcription translation_of codon protein_folding ligand receptor",
    "membrane_potential nernst action_potential pharmacokinetics",
    # engineering / signals / control
    "laplace laplace_transform transfer_function time_constant control_system feedback_loop",
    "step_response impulse_response bode nyquist fourier fourier_transform signal",
    "stress strain young's_modulus shear beam cantilever deflection fluid viscosity reynolds",
    "bernoulli heat_transfer conduction convection thermal_conductivity circuit circuits",
    "amplifier op-amp impedance",
    # economics / finance
    "supply_curve demand_curve elasticity marginal_cost marginal_revenue marginal_utility",
    "marginal_rate_of_substitution utility_function utility_maximization profit-maximizing",
    "profit_maximization monopoly oligopoly duopoly nash_equilibrium consumer_surplus",
    "producer_surplus deadweight_loss equilibrium_price equilibrium_quantity",
    "present_value net_present_value npv discount_rate yield_to_maturity coupon_rate",
    "black-scholes option_pricing volatility arbitrage capm sharpe_ratio",
    "annuity amortization continuously_compounded derivatives_pricing",
)
# Weak terms: common in everyday word problems too; they only reinforce strong evidence.
_SCI_WEAK = _words(
    "sci_weak",
    "energy force mass temperature pressure gas density frequency charge current power",
    "heat light wave waves atom atoms atomic chemical reaction reactions cell cells gene",
    "genes dna rna protein species star stars sun planet earth moon radiation particle",
    "particles field spring pendulum collision equilibrium speed rate market demand",
    "supply price consumer consumers firm firms interest",
)

_GENERAL = _words(
    "general",
    "write_a_poem poem poems poet poets rhyme haiku sonnet story stories essay essays blog blog_post email",
    "letter cover_letter speech slogan tweet lyrics song novel fiction character characters",
    "rewrite rephrase paraphrase proofread edit grammar tone persuasive creative",
    "summarize summarise summary translate translation pretend roleplay role-play act_as",
    "imagine opinion advice recommend recommendations suggest suggestions tips ideas",
    "history historical philosophy ethics culture cultural religion politics political",
    "movie movies film films book books author marketing brand seo product_description",
    "outline headline extract identify classify named_entities csv feelings relationship travel",
    "itinerary recipe describe explain_what explain_why compare",
)
_CONSTRAINT = _words(
    "constraint",
    "must exactly at_least at_most no_more_than without_using only_using such_that subject_to",
    "given_that assume assuming where satisfy satisfies satisfying",
)
_SEQUENCE = _words("sequence_marker", "then hence therefore next")
_SUBPART = re.compile(r"(?im)^[ \t]*(?:\(?[a-h1-9][).]\s|part\s+\w|sub-?problem|step\s+\d)")
_UNIT_WORDS = _words(
    "unit",
    "joule joules kelvin newton newtons pascal pascals volt volts ampere amperes watt watts hertz",
    "angstrom angstroms electron_volt electron_volts electron-volt electron-volts light_year",
    "light_years light-year light-years parsec parsecs radian radians coulomb coulombs tesla",
    "teslas kilojoule kilojoules",
)
_VOCAB = _trie_regex(_TERMS)
_TERM_KINDS: dict[str, tuple[str, ...]] = {t: tuple(sorted(k)) for t, k in _TERMS.items()}
_SPACES = re.compile(r"\s+")
_KIND_NAMES: tuple[str, ...] = tuple(sorted({k for ks in _TERMS.values() for k in ks}))


def _squash(x: float, k: float) -> float:
    """Map evidence ``x >= 0`` to ``[0, 1)``, saturating; ``k`` is the half-way point."""
    return x / (x + k) if x > 0 else 0.0


def _clip(text: str, limit: int) -> str:
    if len(text) <= 2 * limit:
        return text
    return text[:limit] + "\n" + text[-limit:]


# --------------------------------------------------------------------------- scoring


def _analyse(text: str, policy: Policy, turns: int) -> Decision:
    t = _clip(text, policy.scan_chars)
    n_chars = len(t)

    kinds: dict[str, int] = dict.fromkeys(_KIND_NAMES, 0)
    for term in _VOCAB.findall(t.lower()):
        for kind in _TERM_KINDS.get(term) or _TERM_KINDS.get(_SPACES.sub(" ", term), ()):
            kinds[kind] += 1
    fences = len(_CODE_FENCE.findall(t))
    syntax = len(_CODE_SYNTAX.findall(t))
    code_words = kinds["code"]
    code_intent = 1 if kinds["code_verb"] and kinds["code_noun"] else 0
    latex = len(_LATEX.findall(t))
    equations = len(_EQUATION.findall(t))
    numbers = len(_NUMBER.findall(t))
    sci_numbers = len(_SCI_NUMBER.findall(t))
    units = len(_UNIT.findall(t)) + kinds["unit"]
    math_words = kinds["math"]
    reasoning = kinds["reasoning"]
    proof = kinds["proof"]
    sci_strong = kinds["sci_strong"]
    sci_weak = kinds["sci_weak"]
    general = kinds["general"]
    constraints = kinds["constraint"]
    questions = t.count("?")
    subparts = len(_SUBPART.findall(t)) + kinds["sequence_marker"]

    # Normalise counts for long texts: density matters more than raw count.
    size_k = max(1.0, n_chars / 1500.0)
    reasons: list[str] = []

    # ---- domain evidence
    code_ev = 3.0 * min(fences, 2) + 0.6 * min(syntax, 10) + 0.5 * min(code_words, 8)
    code_ev += 2.0 * min(code_intent, 2)
    math_ev = (
        0.8 * min(latex, 10)
        + 0.6 * min(equations, 10)
        + 0.5 * min(math_words, 8)
        + 0.6 * min(reasoning, 5)
        + 0.1 * min(numbers, 6)
    )
    quantitative = latex + equations + units + numbers + sci_numbers > 0
    sci_terms = sci_strong + 0.5 * min(sci_weak, 4) if sci_strong else 0.0
    sci_terms += 0.5 * min(units, 2) + 0.5 * min(sci_numbers, 2)
    sci_ev = sci_terms + 0.8 * min(units, 6) + 1.0 * min(sci_numbers, 3)
    gen_ev = 1.0 * min(general, 8) + 0.002 * max(0, n_chars - 600) / size_k
    math_ev /= size_k**0.5
    code_ev /= size_k**0.5
    sci_ev /= size_k**0.5

    if (
        sci_terms >= policy.science_min_terms
        and (
            (quantitative and (math_ev >= 1.5 or units or sci_numbers))
            or (reasoning and sci_strong >= 3)
        )
        and sci_ev + math_ev > code_ev
    ):
        domain = "science"
    elif code_ev >= 2.0 and code_ev >= 0.7 * max(math_ev, gen_ev):
        domain = "code"
    elif math_ev >= 1.2 and math_ev > gen_ev:
        domain = "math"
    else:
        domain = "general"

    # ---- difficulty
    pts = 0.0
    if fences or syntax >= 3:
        reasons.append("code")
        pts += 1.2
    elif code_intent:
        reasons.append("coding request")
        pts += 0.8
    if code_words >= 2:
        reasons.append(f"programming vocabulary: {code_words} terms")
        pts += 0.2 * min(code_words, 5)
    if latex or equations >= 2:
        reasons.append("math notation")
        pts += 0.4 + 0.1 * min(latex + equations, 8)
    if math_words >= 2:
        reasons.append(f"math vocabulary: {math_words} terms")
        pts += 0.2 * min(math_words, 6)
    if proof:
        reasons.append("proof language")
        pts += 0.8
    if reasoning:
        reasons.append("reasoning markers")
        pts += 0.3 * min(reasoning, 4)
    if sci_strong:
        reasons.append(f"science vocabulary: {sci_strong} terms")
        pts += 0.4 * min(sci_terms, 5)
    if units or sci_numbers:
        reasons.append("physical quantities")
        pts += 0.4 * min(units + sci_numbers, 4)
    if numbers >= 3:
        reasons.append("many quantities")
        pts += 0.1 * min(numbers, 8)
    if constraints >= 2:
        reasons.append("explicit constraints")
        pts += 0.15 * min(constraints, 4)
    if subparts >= 2 and domain != "general":
        reasons.append("long multi-step question")
        pts += 0.15 * min(subparts, 4)
    if turns > 2:
        reasons.append(f"conversation: {turns} user turns")
        pts += 0.1 * min(turns, 5)
    if general:
        reasons.append(f"writing/knowledge vocabulary: {general} terms")
        pts -= (0.35 if domain == "general" else 0.15) * min(general, 6)
    if questions >= 3 and domain == "general":
        pts -= 0.2

    if domain != "general":
        pts += 0.3  # a technical domain was recognised: some reasoning is likely needed
    score = 1.0 - math.exp(-max(pts, 0.0) / 2.5)
    score = round(min(max(score, 0.0), 1.0), 4)

    if domain == "general":
        model = policy.general_model
    elif domain == "science" and score >= policy.preview_threshold:
        model = policy.preview_model
    elif score >= policy.mini_threshold:
        model = policy.mini_model
    else:
        model = policy.general_model
        reasons.append("low difficulty")
    if not reasons:
        reasons.append("general chat")
    reasons.insert(0, f"domain: {domain}")
    return Decision(model=model, score=score, domain=domain, reasons=tuple(reasons))


# --------------------------------------------------------------------------- public API


def route_text(text: str, policy: Policy = DEFAULT) -> Decision:
    """Route a single prompt text."""
    return _analyse(text, policy, turns=1)


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


def route(messages: list[dict[str, Any]], policy: Policy = DEFAULT) -> Decision:
    """Route a chat request from the text of its user messages (the last one weighted most)."""
    texts: list[str] = []
    image = False
    for msg in messages:
        if not isinstance(msg, Mapping) or msg.get("role") != "user":
            continue
        text, has_image = _content_text(msg.get("content"))
        image = image or has_image
        texts.append(text)
    if image:
        return Decision(
            model=policy.general_model, score=0.0, domain="general", reasons=("images",)
        )
    if not texts:
        return Decision(
            model=policy.general_model, score=0.0, domain="general", reasons=("no user text",)
        )
    last = texts[-1]
    # Earlier turns add context, but only the tail of them and with less weight than the last.
    earlier = "\n".join(texts[:-1])
    budget = policy.scan_chars // 2
    if len(earlier) > budget:
        earlier = earlier[-budget:]
    combined = f"{earlier}\n{last}" if earlier else last
    decision = _analyse(combined, policy, turns=len(texts))
    if earlier:
        alone = _analyse(last, policy, turns=len(texts))
        # The last message decides unless the context points to a stronger model.
        rank = {policy.general_model: 0, policy.mini_model: 1, policy.preview_model: 2}
        if rank.get(alone.model, 0) >= rank.get(decision.model, 0) or alone.domain != "general":
            return alone
    return decision
