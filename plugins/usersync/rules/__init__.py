"""Rules: what an administrator writes per source (``model``), how files are read (``loader``), the users
table's fields and the policies each allows (``fields``), and value transforms (``transforms``)."""

from usersync.rules.loader import RulesError, load_rules, load_rules_dir, parse_rules
from usersync.rules.model import Rules

__all__ = ["Rules", "RulesError", "load_rules", "load_rules_dir", "parse_rules"]
