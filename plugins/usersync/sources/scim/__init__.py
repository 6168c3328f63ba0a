"""``source.type: scim``: any SCIM 2.0 service provider (RFC 7643 / 7644) — Okta, OneLogin, JumpCloud, HR systems,
and Cisco Webex Control Hub (the ``webex`` preset)."""
