"""rolenrules: teach LLMs to follow the roles and rules in system prompts (RoleNRules)."""

__version__ = "0.1.0"
