"""The ground floor: what every layer above shares — the users-table definition, the strict base of
rules sections, connection fields, run folders, progress lines. It imports nothing else of usersync."""
