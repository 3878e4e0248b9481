"""The database adapter: portable types, models, migrations, repositories and the DB lock backend."""
