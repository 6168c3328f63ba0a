"""Explaining one account, step by step, in words an admin reads: what the source holds, whether the rules'
scope takes it in, each field's value through its transforms, which user it matches, who holds a contested
name or number, and what the run does to the user.

A single-account run goes through the usual steps; each writes its part of the explanation into the run folder
(``explanation``), and the report puts the parts together under the numbered headings of ``SECTIONS``.
"""
