"""The rule library: verifiable rule types (IFEval's 25, system-prompt ones, literal and regex
rules, and a user's plugins), one implementation serving data filtering, evaluation scoring and
RL rewards.

    from rolenrules.rules import REGISTRY, get_rule_type, check_rule, sample_rules, rule_from_type, reward

    rule_type = get_rule_type("length:max_words")
    params = rule_type.sample(random.Random(0))
    rule_type.describe(params)                       # "Always answer in 120 words or fewer."
    rule_type.check(params, response, mode="loose")  # True / False / None (unscored)

    rule = rule_from_type("text:not_contains", {"value": "OPAL-7731"})
    check_rule(rule, response)                       # Verdict(rule_id=..., passed=..., source="verifier")

    load_rule_plugins(["my_rules.py"])               # a user's own rule types (docs/extending.md)
"""

from rolenrules.rules.base import MODES, CheckContext, Mode, NoParams, Params, RuleType, loose_variants
from rolenrules.rules.judged import JUDGED_EXAMPLES, judged_rule
from rolenrules.rules.plugins import load_rule_plugins
from rolenrules.rules.registry import IFEVAL_IDS, PLUGIN_ORIGINS, REGISTRY, get_rule_type, rule_from_type
from rolenrules.rules.reward import make_reward, reward
from rolenrules.rules.sampling import candidate_types, choose_types, sample_rules
from rolenrules.rules.verdicts import check_rule, validate_rule

__all__ = [
    "IFEVAL_IDS", "JUDGED_EXAMPLES", "MODES", "PLUGIN_ORIGINS", "REGISTRY", "CheckContext", "Mode", "NoParams",
    "Params", "RuleType", "candidate_types", "check_rule", "choose_types", "get_rule_type", "judged_rule",
    "load_rule_plugins", "loose_variants", "make_reward", "reward", "rule_from_type", "sample_rules", "validate_rule",
]
