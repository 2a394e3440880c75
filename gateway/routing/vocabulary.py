"""The router's vocabularies, and counting them in a text in one tokenisation pass. Pure.

`gateway.routing.heuristic` turns the counts into a domain and a difficulty.
"""

from __future__ import annotations

import re
from collections import _count_elements  # type: ignore[attr-defined]
from collections.abc import Mapping
from typing import Final

# Every ASCII punctuation character separates words; vocabulary terms and request text are both
# normalised with it, so "half-life", "Half life" and "half_life" all meet as (b"half", b"life").
# The text is tokenised as UTF-8 bytes: bytes.translate is a table lookup per byte, while
# str.translate falls back to a slow path as soon as the text holds one non-ASCII character.
_PUNCTUATION: Final = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
# Every digit becomes "0": numbers then fall into a handful of tokens ("0", "00", ...) that are
# counted with dict look-ups instead of testing every distinct token with isdigit().
_TO_SPACE: Final = bytes.maketrans(_PUNCTUATION + b"123456789", b" " * len(_PUNCTUATION) + b"0" * 9)
_NUMBER_TOKENS: Final = frozenset(b"0" * n for n in range(1, 16))
# Typographic quotes, dashes and ellipsis in UTF-8 (E2 80 xx), which would otherwise stick to
# the words they touch; the pattern starts with a literal, so the engine skips ahead fast.
_UNICODE_PUNCTUATION: Final = re.compile(b"\xe2\x80[\x93\x94\x98\x99\x9c\x9d\xa6]")
# Words the learned model does not weigh, nor count in a text's share of say: function words
# and single letters (variables, option labels) tell a source's style, not what a prompt asks;
# leaving them out also keeps the evidence a decision names to words that mean something.
UNWEIGHED: Final = frozenset(
    b"""a an the of to in on at by for with from and or but nor not no is are was were be been
    being it its this that these those as if then than so such can could would should will
    shall may might must do does did done have has had having i you he she we they me him her
    us them my your his our their what which who whom whose when where why how all any each
    few more most other some only own same too very just also into over under again further
    once here there about above below up down out off both between through during before
    after""".split()
) | frozenset(bytes([letter]) for letter in range(ord("a"), ord("z") + 1))


def _vocabulary(*groups: str) -> frozenset[bytes]:
    """Whitespace-separated lower-case terms; ``_`` joins the words of a phrase."""
    return frozenset(
        b" ".join(term.encode().translate(_TO_SPACE).split())
        for group in groups
        for term in group.split()
    )


_CODE = _vocabulary(
    "python javascript typescript java golang rust kotlin swift ruby php sql bash shell",
    "html css react node.js numpy pandas django flask regex regular_expression json_schema",
    "function functions method methods recursion recursive algorithm algorithms array arrays",
    "linked_list hash_map hashmap hash_table dictionary dict binary_tree binary_search_tree",
    "data_structure time_complexity space_complexity big-o stack queue heap trie",
    "dynamic_programming compile compiler runtime debug bug refactor unit_test unit_tests",
    "api endpoint script_that python_script shell_script bash_script program_that programming",
    "computer_program source_code snippet variable variables loop text_file in_go",
    "string strings integer_array substring subarray sorted_list dataframe thread threads",
    "mutex async lru_cache cache o(1) o(n) o(log_n) o(n_log_n) implementation linear_time",
    "quadratic_time big_o optimize_this return_value returns_the input_list list_of_integers",
    "list_of_strings command_line command-line terminal database query spreadsheet_formula",
    "class_that method_that edge_cases test_cases function_that takes_a_list takes_a_string",
    "takes_an_array takes_an_integer concurrently concurrency http urls json csv_file git",
    "docker linux github repository exception stack_trace quicksort mergesort merge_sort",
    "binary_search bfs dfs dijkstra breadth-first depth-first topological_sort subsequence",
    "graph_traversal adjacency_list",
)
# Tokens that are almost only ever seen inside source code.
_CODE_KEYWORDS = _vocabulary(
    "def elif println printf console cout endl nullptr std void const fn func var let",
    "lambda self none null true false public static import return int str bool len",
)
_CODE_VERBS = _vocabulary(
    "write implement create code develop fix debug refactor optimize optimise complete",
    "program build port convert translate_this need want give show make generate return",
)
_CODE_NOUNS = _vocabulary(
    "function program method algorithm code sql_query database_query regex api module cli",
    "parser script",
    "unit_test unit_tests cache data_structure linked_list binary_tree web_server",
    "endpoint sql python javascript typescript java rust golang bash shell snippet routine",
    "subroutine decorator one-liner scraper command-line_tool cli_tool code_snippet array",
    "arrays integer_array array_of_integers list_of_integers quicksort mergesort merge_sort",
    "binary_search bfs dfs dijkstra topological_sort in_c in_go in_c++ in_rust in_java",
)

_MATH = _vocabulary(
    "equation equations solve integer integers prime primes divisible divisor divisors",
    "remainder modulo mod gcd lcm factorial probability polynomial polynomials root roots",
    "digit digits triangle triangles circle circles perimeter area radius diameter hypotenuse",
    "angle angles matrix matrices vector vectors derivative derivatives integral integrals",
    "sequence series real_numbers complex_number complex_numbers ordered_pairs",
    "positive_integer positive_integers expression simplify evaluate fraction fractions ratio",
    "percent percentage average mean median arithmetic geometric exponent logarithm",
    "inequality parabola quadrant coordinate coordinates vertex vertices sum product quotient",
    "combinatorics permutations combinations congruent similar_triangles square_root",
    "theorem lemma proof differential_equation eigenvalue eigenvalues determinant",
    "converge converges convergence limit asymptote function_f domain range_of",
    "how_many_ways ways_to at_random randomly dice die coin coins deck cards arrangements",
    "arrange choose committee volume cylinder sphere cone cube distance intersection",
    "intersections consecutive right_triangle odd even likely expected_value",
    # plain-text notation, counted like its LaTeX spelling
    "sqrt squared cubed square_root_of cube_root integral_of derivative_of log ln sin cos tan",
    "cot sec arcsin arctan exp to_the_power power_of raised_to factorial_of divided_by",
    "times_as_many percent_of mod_n x y z f(x) g(x) dx dy dt plus minus equals",
    "marbles balls drawn without_replacement with_replacement chance odds",
)
_REASONING = _vocabulary(
    "prove show_that demonstrate_that how_many find_all determine calculate compute",
    "what_is_the_value find_the_value solve_for how_much least greatest smallest largest",
    "maximum minimum maximize minimize step_by_step derive estimate express_your_answer",
    "round_your_answer to_the_nearest in_terms_of what_is_the_probability how_long",
    "how_far how_fast find evaluate simplify how_many_ways how_many_times probability",
    "derivation what_is_the_number what_is_the_new how_does_the_change predict",
)
_PROOF = _vocabulary("prove proof show_that demonstrate_that derive find_all for_all_integers")

# Strong terms: rarely used outside technical science, engineering or economics problems.
_SCI_STRONG = _vocabulary(
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
    "semiconductor band_gap fermi dopant superconductor nucleus nuclear plasma",
    "radioactive half-life isotope isotopes fission fusion bohr rydberg ionization",
    "spectral spectroscopy emission_spectrum absorption_spectrum mean_free_path",
    "cross_section hydrostatic degenerate blackbody black-body equation_of_motion",
    "hydrogen_atom energy_gap energy_level energy_levels bohr_radius ground_state excited_state",
    "electronic_states significant_figure significant_figures speed_of_sound",
    "hydrogen helium lithium beryllium nitrogen fluorine neon sodium magnesium silicon",
    "phosphorus sulfur chlorine argon potassium calcium degeneracy particle_in_a_box",
    "partial_pressure partial_pressures kp kc ka pka ksp h2o co2 nh3 ch4 nacl hcl",
    "naoh h2so4 no2 n2o4 so2 caco3 koh agcl ideal_gases constant_pressure constant_volume",
    "sn1 sn2 nucleophile nucleophilic electrophile electrophilic carbocation zaitsev",
    "markovnikov stereochemistry enantiomer enantiomers diastereomer racemic major_product",
    "reaction_mechanism bromo chloro iodo methyl ethyl ethoxide alkyl aldehyde ketone ester",
    "hohmann delta-v geostationary circular_orbit escape_speed",
    # undergraduate physics by course: mechanics, electromagnetism, thermal and statistical,
    # quantum, atomic, nuclear and particle, optics, condensed matter
    "rigid_body angular_velocity angular_acceleration rotational_inertia center_of_mass",
    "centre_of_mass moment_of_force impulse elastic_collision inelastic_collision",
    "simple_harmonic_motion normal_force tension_in spring_constant generalized_coordinates",
    "electric_potential electrostatic electrostatics charge_density surface_charge",
    "point_charge dielectric permittivity permeability magnetic_flux electric_flux flux",
    "conducting_sphere conductor conductors solenoid magnetic_moment dipole dipole_moment",
    "emf induced_emf ampere's_law biot-savart eddy poynting waveguide cavity",
    "heat_engine heat_reservoir reversible irreversible partition_function canonical_ensemble",
    "microstates macrostate equipartition mean_free_path thermal_equilibrium perfect_gas",
    "van_der_waals internal_energy latent_heat phonon phonons lattice_vibration",
    "fermion fermions boson bosons quark quarks meson mesons baryon baryons lepton leptons",
    "hadron hadrons muon muons pion pions kaon neutrino neutrinos positron positronium",
    "isospin parity spin-orbit hyperfine zeeman stark_effect fine_structure angular_momentum_quantum",
    "quantum_number quantum_numbers commutator expectation_value perturbation_theory",
    "uncertainty_principle tunneling potential_well infinite_well harmonic_potential",
    "cross-section scattering decay_rate branching_ratio half_life alpha_decay beta_decay",
    "binding_energy nuclide nuclei cyclotron synchrotron accelerator",
    "focal_length converging_lens diverging_lens thin_lens index_of_refraction",
    "refractive_index snell's_law total_internal_reflection diffraction_grating slit",
    "double_slit coherence coherent laser birefringent polarizer polarized",
    "brillouin_zone fermi_energy fermi_level band_structure effective_mass hall_effect",
    "electron_configuration orbital spin_multiplicity term_symbol nmr chemical_shift",
    "ir_spectrum mass_spectrometry chromatography electronegativity electron_affinity",
    "ionization_energy lewis_structure vsepr oxidation_state oxidation_number rate_law",
    "galvanic electrolysis standard_potential emf_of_the_cell fuel_cell hess's_law",
    "standard_enthalpy heat_of_formation bond_dissociation calorimeter calorimetry",
    # astronomy
    "luminosity bolometric redshift white_dwarf neutron_star black_hole",
    "red_giant supernova hubble telescope angular_resolution stellar solar_mass parallax",
    "orbit orbital exoplanet kepler semi-major_axis eccentricity escape_velocity",
    "apparent_magnitude absolute_magnitude cosmology cosmological dark_matter main_sequence",
    "accretion schwarzschild event_horizon nebula protostar jeans_mass virial",
    "astronomical_unit solar_luminosity light-year parsec",
    # chemistry / materials
    "molecule molecules molecular molar molarity mole_fraction stoichiometry reactant",
    "activation_energy rate_constant arrhenius equilibrium_constant reaction_rate first-order",
    "second-order kinetics catalyst catalysis titration acid base buffer ph oxidation",
    "reduction_potential redox electrochemical electrolyte anode cathode covalent ionic",
    "ionic_bond bond_energy lattice crystal crystalline diffusion diffusivity fick",
    "concentration solubility precipitate gibbs free_energy orbitals",
    "valence hybridization alkane alkene benzene polymer isomer chirality",
    "yield_strength tensile ductile brittle fracture_toughness dislocation dislocations",
    "grain_boundary alloy phase_diagram eutectic lattice_constant unit_cell fcc bcc",
    "miller_indices vacancy vacancies creep elastic_modulus poisson's_ratio",
    "thermal_expansion",
    # biology / medicine
    "enzyme enzymes michaelis-menten allele alleles hardy-weinberg genotype phenotype",
    "mitochondria transcription codon protein_folding ligand receptor receptors",
    "membrane_potential nernst action_potential pharmacokinetics gene_expression mutation",
    "mutations chromosome chromosomes meiosis mitosis heterozygous homozygous recessive",
    "punnett allele_frequency population_genetics selection_coefficient phylogenetic",
    "transcription_factor mrna trna ribosome ribosomes polypeptide amino_acid amino_acids",
    "atp glycolysis krebs oxidative_phosphorylation photosynthesis chloroplast neuron",
    "neurons synapse synaptic antibody antibodies antigen pathogen epidemiology",
    "vmax kcat lineweaver-burk substrate inhibitor competitive_inhibition",
    "dissociation_constant binding_affinity genome genomes nucleotide nucleotides",
    "base_pairs pcr crispr plasmid operon metabolic metabolism osmotic osmolarity",
    "recombination linkage heritability genetic_drift bacterial bacteria",
    # earth science
    "plate_tectonics tectonic seismic earthquake richter mantle lithosphere asthenosphere",
    "magma sediment sedimentary igneous metamorphic isostasy isostatic radiometric",
    "p-wave s-wave p-waves s-waves groundwater aquifer permeability porosity darcy",
    "hydraulic_conductivity hydraulic_head erosion glacier glacial lapse_rate albedo",
    "radiative_forcing salinity coriolis geostrophic geothermal isochron decay_constant",
    "granite basalt rubidium strontium uranium zircon radiocarbon carbon-14",
    # engineering / signals / control
    "laplace laplace_transform transfer_function time_constant control_system feedback_loop",
    "step_response impulse_response bode nyquist fourier fourier_transform signal",
    "stress strain young's_modulus shear beam cantilever deflection fluid viscosity reynolds",
    "bernoulli heat_transfer conduction convection thermal_conductivity circuit circuits",
    "amplifier op-amp impedance truss bending_moment shear_force torsion buckling",
    "factor_of_safety heat_exchanger turbine compressor nozzle thermal_efficiency rankine",
    "brayton otto_cycle pid_controller closed-loop open-loop gain_margin phase_margin",
    "root_locus state-space sampling_rate low-pass high-pass transistor mosfet diode rlc",
    "flow_rate head_loss pressure_drop mach drag_coefficient lift_coefficient airfoil",
    # economics / finance
    "supply_curve demand_curve elasticity marginal_cost marginal_revenue marginal_utility",
    "marginal_rate_of_substitution utility_function utility_maximization profit-maximizing",
    "profit_maximization monopoly oligopoly duopoly nash_equilibrium consumer_surplus",
    "producer_surplus deadweight_loss equilibrium_price equilibrium_quantity",
    "present_value net_present_value npv discount_rate yield_to_maturity coupon_rate",
    "black-scholes option_pricing volatility arbitrage capm sharpe_ratio",
    "annuity amortization continuously_compounded derivatives_pricing duration convexity",
    "coupon maturity yield_curve forward_rate spot_rate call_option put_option strike_price",
    "put-call_parity binomial_tree hedge hedging portfolio expected_return covariance wacc",
    "cost_of_capital dividend dividends free_cash_flow irr internal_rate_of_return",
    "cournot bertrand stackelberg game_theory pareto cobb-douglas production_function",
    "budget_constraint indifference_curve price_elasticity tax_incidence",
    "comparative_advantage solow steady_state value_at_risk basis_point basis_points",
    "compounded compounding interest_rate risk-free money_supply fiscal_multiplier",
    "government_spending marginal_propensity balanced_budget equilibrium_gdp aggregate_demand",
    "aggregate_supply is-lm phillips_curve spending_multiplier",
)
# Weak terms: common in everyday word problems too; they only reinforce strong evidence.
_SCI_WEAK = _vocabulary(
    "energy force mass temperature pressure gas density frequency charge current power",
    "heat light wave waves atom atoms atomic chemical reaction reactions cell cells gene",
    "genes dna rna protein proteins species star stars sun planet earth moon radiation",
    "particle particles field spring pendulum collision equilibrium speed rate market demand",
    "supply price consumer consumers firm firms interest bond bonds population organism",
    "rock rocks ocean atmosphere climate inflation gdp load pump galaxy galaxies satellite",
    "consumption investment taxes multiplier thrust altitude",
)
_GENERAL = _vocabulary(
    "write_a_poem poem poems poet poets rhyme haiku sonnet story stories essay essays blog",
    "blog_post email letter cover_letter speech slogan tweet lyrics song novel fiction",
    "character characters rewrite rephrase paraphrase proofread edit grammar tone persuasive",
    "creative summarize summarise summary translate translation pretend roleplay role-play",
    "act_as imagine opinion advice recommend recommendations suggest suggestions tips ideas",
    "history historical philosophy ethics culture cultural religion politics political",
    "movie movies film films book books author marketing brand seo product_description",
    "outline headline extract identify classify named_entities csv feelings relationship",
    "travel itinerary recipe describe explain_what explain_why compare introduction resume",
    "linkedin lesson_plan scene screenplay episode script-writer",
)
_CONSTRAINT = _vocabulary(
    "must exactly at_least at_most no_more_than without_using only_using such_that",
    "subject_to given_that assume assuming where satisfy satisfies satisfying",
)
_SEQUENCE = _vocabulary("then hence therefore next")
_UNIT_WORDS = _vocabulary(
    "m/s km/s m/s^2 cm nm μm µm mm kg mol kj mj ev kev mev gev pa kpa mpa gpa atm hz khz mhz",
    "ghz mv kv ma ohm ohms kw mw rad/s °c å au kpc mpc ly mathrm",
    "joule joules kelvin newton newtons pascal pascals volt volts ampere amperes watt watts",
    "hertz angstrom angstroms electron_volt electron_volts light_years parsecs radian radians",
    "coulombs tesla teslas kilojoule kilojoules kilogram kilograms meters_per_second",
    "micrometers nanometers",
)
# Single-letter SI units after a number ("300 K", "12 V"): only the letter case tells them from
# words, so they cannot come from the lower-cased tokens.


def _index(
    vocabularies: Mapping[str, frozenset[bytes]],
) -> tuple[
    dict[bytes, tuple[str, ...]],
    dict[bytes, tuple[tuple[bytes, frozenset[bytes], tuple[str, ...]], ...]],
]:
    """Split terms into single words and phrases; a phrase is keyed by its longest word, which
    is rarely a stop word, so common words like "the" trigger no phrase search."""
    words: dict[bytes, list[str]] = {}
    phrases: dict[bytes, dict[bytes, list[str]]] = {}
    for name, terms in vocabularies.items():
        for term in terms:
            parts = term.split()
            if len(parts) > 1:
                key = max(parts, key=len)
                phrases.setdefault(key, {}).setdefault(b" " + term + b" ", []).append(name)
            else:
                words.setdefault(term, []).append(name)
    return (
        {w: tuple(k) for w, k in words.items()},
        {
            f: tuple((p, frozenset(p.split()), tuple(k)) for p, k in ps.items())
            for f, ps in phrases.items()
        },
    )


_KINDS: Final = {
    "code": _CODE,
    "code_kw": _CODE_KEYWORDS,
    "code_verb": _CODE_VERBS,
    "code_noun": _CODE_NOUNS,
    "math": _MATH,
    "reasoning": _REASONING,
    "proof": _PROOF,
    "sci_strong": _SCI_STRONG,
    "sci_weak": _SCI_WEAK,
    "general": _GENERAL,
    "constraint": _CONSTRAINT,
    "sequence_marker": _SEQUENCE,
    "unit": _UNIT_WORDS,
}
_WORDS, _PHRASES = _index(_KINDS)
_WORD_KEYS: Final = frozenset(_WORDS)
_PHRASE_KEYS: Final = frozenset(_PHRASES)


def tokenise(lower: bytes) -> tuple[list[bytes], dict[bytes, int]]:
    """The words of a lower-cased UTF-8 text, in order, and how often each occurs."""
    if not lower.isascii():
        lower = _UNICODE_PUNCTUATION.sub(b" ", lower)
    tokens = lower.translate(_TO_SPACE).split()
    # Counter's C core without Counter's Python-level __init__, whose overhead would be a
    # sizable share of a routing decision.
    counts: dict[bytes, int] = {}
    _count_elements(counts, tokens)
    return tokens, counts


def count_terms(tokens: list[bytes], counts: dict[bytes, int]) -> tuple[dict[str, int], int]:
    """Occurrences per vocabulary, and the number of numeric tokens, of a tokenised text."""
    kinds = dict.fromkeys(_KINDS, 0)
    for word in _WORD_KEYS.intersection(counts):
        n = counts[word]
        for kind in _WORDS[word]:
            kinds[kind] += n
    keys = _PHRASE_KEYS.intersection(counts)
    if keys:
        joined = b" " + b" ".join(tokens) + b" "
        for key in keys:
            for phrase, words, names in _PHRASES[key]:
                # Searching the text only pays once every word of the phrase is known present.
                n = joined.count(phrase) if counts.keys() >= words else 0
                if n:
                    for kind in names:
                        kinds[kind] += n
    numbers = sum(map(counts.__getitem__, _NUMBER_TOKENS.intersection(counts)))
    return kinds, numbers
