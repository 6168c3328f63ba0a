"""A FreePBX-style ``userman_users`` table (FreePBX 15/16 User Manager) with generated users."""

from __future__ import annotations

USERMAN_DDL = """
CREATE TABLE userman_users (
  id int(11) NOT NULL AUTO_INCREMENT,
  auth varchar(150) DEFAULT 'freepbx',
  authid varchar(750) DEFAULT NULL,
  username varchar(150) DEFAULT NULL,
  description varchar(255) DEFAULT NULL,
  password varchar(255) DEFAULT NULL,
  default_extension varchar(45) NOT NULL DEFAULT 'none',
  primary_group int(11) DEFAULT NULL,
  permissions longblob,
  fname varchar(100) DEFAULT NULL,
  lname varchar(100) DEFAULT NULL,
  displayname varchar(200) DEFAULT NULL,
  title varchar(100) DEFAULT NULL,
  company varchar(100) DEFAULT NULL,
  department varchar(100) DEFAULT NULL,
  language varchar(100) DEFAULT NULL,
  timezone varchar(100) DEFAULT NULL,
  dateformat varchar(100) DEFAULT NULL,
  timeformat varchar(100) DEFAULT NULL,
  datetimeformat varchar(100) DEFAULT NULL,
  email text,
  cell varchar(100) DEFAULT NULL,
  work varchar(100) DEFAULT NULL,
  home varchar(100) DEFAULT NULL,
  fax varchar(100) DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY username_UNIQUE (username, auth)
) DEFAULT CHARSET=utf8mb4
"""

COLUMNS = ("username", "password", "default_extension", "fname", "lname", "displayname", "department",
           "language", "email", "cell", "fax")


def userman_row(i: int) -> tuple:
    ext = "none" if i % 10 == 9 else str(2000 + i)  # some users have no extension, as in real PBXs
    return (f"pbxuser{i:04d}", "$2y$10$notarealhash", ext, f"Name{i}", f"Surname{i}", f"Name{i} Surname{i}",
            ["Sales", "Support", "Admin"][i % 3], "en_US", f"pbxuser{i}@example.test", f"+3933{i:07d}", "")


def load_userman(conn, count: int) -> None:
    """Create the table in the current database and insert ``count`` users (a PyMySQL connection)."""
    with conn.cursor() as c:
        c.execute(USERMAN_DDL)
        c.executemany(
            f"INSERT INTO userman_users ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})",
            [userman_row(i) for i in range(count)],
        )
