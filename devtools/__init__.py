"""Development helpers shared by the tests, the demo and the benchmarks: private servers on loopback and
generated AD-like data. Not part of the installed package."""
