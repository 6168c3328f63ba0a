"""Write-back: values the application owns (numbers an admin assigns in its UI) written back to the directory
the users came from, guarded like every write: planned from the users table against what the run read, capped
by ``write_back.max_writes`` (an approval lets a larger wave through), optimistic per value, reported per user.

``spec`` is the rules section, ``plan`` decides what to write, ``guard`` caps a wave, ``writer`` is what each
writable source type implements (``usersync/sources/<type>/writer.py``), ``step`` runs it over the run folder.
"""
