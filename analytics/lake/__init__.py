"""The lake's contract: table schemas (``schema``), the DDL other engines read it
with (``ddl``), and the consistency check (``check``).
"""
