"""Written by hand (see datalayer/partitions.py): ``system_logs`` becomes range-partitioned by ``created_at``.

PostgreSQL, in this migration's one transaction: the table is renamed aside, a partitioned ``system_logs`` with
the same columns is created with a DEFAULT partition (an insert never fails for lack of a partition) and
partitions covering the old rows' dates, the rows are copied, the old table is dropped, then the primary key
(``(id, created_at)``: a partitioned table's unique keys must hold the partition key) and the same indexes are
built (partitioned indexes, one per partition). Partitions: one per day (UTC) from the start of last month to a
week ahead, one per month for older rows (at most 120 months back; older rows and rows dated beyond next week
go to the DEFAULT partition). ``ensure_partitions`` (``datalayer maintain``, the health monitor) keeps
creating them ahead in the interval ``LOG_PARTITION_INTERVAL`` sets. The downgrade copies every row back into
a plain table with the original primary key and indexes.

SQLite keeps the plain table: this migration changes nothing there.

The models are unchanged (Tortoise still sees ``id`` as the primary key), so MODELS_STATE is the previous
file's.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_INDEXES = """
        ALTER TABLE "system_logs" ADD CONSTRAINT "system_logs_pkey" PRIMARY KEY ({key});
        CREATE INDEX IF NOT EXISTS "idx_system_logs_service_e048c8" ON "system_logs" ("service", "created_at");
        CREATE INDEX IF NOT EXISTS "idx_system_logs_level_4fd60f" ON "system_logs" ("level", "created_at");
        CREATE INDEX IF NOT EXISTS "idx_system_logs_created_ec52ee" ON "system_logs" ("created_at");
        COMMENT ON TABLE "system_logs" IS 'A system event (append-only; ``cleanup_old_data`` prunes old ones).';"""

UPGRADE = {
    "postgres": """
        ALTER TABLE "system_logs" RENAME TO "system_logs_unpartitioned";
        CREATE TABLE "system_logs" (LIKE "system_logs_unpartitioned" INCLUDING DEFAULTS INCLUDING COMMENTS INCLUDING STORAGE)
            PARTITION BY RANGE ("created_at");
        CREATE TABLE "system_logs_default" PARTITION OF "system_logs" DEFAULT;
        DO $$
        DECLARE
            today timestamp := date_trunc('day', now() AT TIME ZONE 'UTC');
            daily_from timestamp := date_trunc('month', now() AT TIME ZONE 'UTC' - interval '31 days');
            upper_bound timestamp := date_trunc('day', now() AT TIME ZONE 'UTC') + interval '8 days';
            oldest timestamp;
            low timestamp;
            high timestamp;
        BEGIN
            SELECT min("created_at") AT TIME ZONE 'UTC' INTO oldest FROM "system_logs_unpartitioned";
            low := date_trunc('day', least(coalesce(oldest, today), today));
            IF low < daily_from THEN
                low := greatest(date_trunc('month', low), daily_from - interval '120 months');
            END IF;
            WHILE low < upper_bound LOOP
                high := CASE WHEN low < daily_from THEN low + interval '1 month' ELSE low + interval '1 day' END;
                EXECUTE format('CREATE TABLE %I PARTITION OF "system_logs" FOR VALUES FROM (%L) TO (%L)',
                               'system_logs_p' || to_char(low, 'YYYYMMDD'),
                               to_char(low, 'YYYY-MM-DD HH24:MI:SS') || '+00',
                               to_char(high, 'YYYY-MM-DD HH24:MI:SS') || '+00');
                low := high;
            END LOOP;
        END
        $$;
        INSERT INTO "system_logs" SELECT * FROM "system_logs_unpartitioned";
        DROP TABLE "system_logs_unpartitioned";""" + _INDEXES.format(key='"id", "created_at"'),
    "sqlite": """
        -- SQLite has no partitioned tables: system_logs stays a plain table
        SELECT 1;""",
}

DOWNGRADE = {
    "postgres": """
        ALTER TABLE "system_logs" RENAME TO "system_logs_partitioned";
        CREATE TABLE "system_logs" (LIKE "system_logs_partitioned" INCLUDING DEFAULTS INCLUDING COMMENTS INCLUDING STORAGE);
        INSERT INTO "system_logs" SELECT * FROM "system_logs_partitioned";
        DROP TABLE "system_logs_partitioned";""" + _INDEXES.format(key='"id"'),
    "sqlite": """
        -- SQLite has no partitioned tables: system_logs stayed a plain table
        SELECT 1;""",
}

# Every partial unique index among live rows after this migration (aerich cannot see them).
LIVE_UNIQUE_INDEXES = (
)


def _dialect(db: BaseDBAsyncClient | None) -> str:
    return db.capabilities.dialect if db is not None else "postgres"


async def upgrade(db: BaseDBAsyncClient) -> str:
    return UPGRADE[_dialect(db)]


async def downgrade(db: BaseDBAsyncClient) -> str:
    return DOWNGRADE[_dialect(db)]


MODELS_STATE = 'eJztXFtT2zgU/iseP8EMzYRwbXZnZ0wINFtImGC2nULHiFgYD47s2jKQZfnvK8l32UntkEAS9FLMuUjyd2RdvnPKswwQsEae6dWU8OHItKDclJ5lBIb0YYzFBlE4TlpPRRjcWBkn7ZYYMxW48bALBphob4HlQSLSoTdwTQebNiJS5FsWFdoDYmgiIxH5yPzlQw3bBsR30CWKy59EbCIdPpHGya+XSYemTnuj3Wp45ECZWF7KAxcCDHUNYKokJj9pA849GR609MzrRv5EHjRAZBcXncMjZkkHeKMNbMsfosTaGeE7G8Xmvm/qNepDdQZE0KWdp16cvleIVCQK3pEIsOvD+OX0RKDDW+BbFD75z1sfDShqkg4wsMAIujVT92q0372/wjGm7DWt21O187aqaXIF2Ac2oiEzEaYYP78E7SbIMKlMO2h9UfprW7vrDAvbw4bLlAw3+YU5koEGrixeCdzZyGRhPyQabA5hMfRZTy4Eeuhaix6mCUUkSGKRzNwI3Ai+OQAukxfUe8gahZNgQgDUzmn7XFVOz2h3Q8/7ZTH8FLVNNQ0mHXHStSBeNvkog282bkT61lG/SPRX6Uev2+ajGtupP2Q6JuBjW0P2owb01HyNpBFqxDKJuu/oU0Y96ymivihRjzBKhT0cfRJ1HVpwuqhnPWcQ9XCSLkrQlzfI+W87itXNqMpGmvV6xYa6PJH97a6Z3yWrYZr1Epi+FO5B1TDNeglMs5g+QNejHecA7SBcjGfKgwOTjGxe2/fmvPZug47gU2Nze297f2t3e5+YsFHGkr0JOHe6KgcnvcWw5xyerTvgFgOa9uEQJUNdxgPREDxp5J0MfEeR3NmZAOE/Sp/NVmLF7YDdUNUIdHmcA5QqAh07rSDSO/USQO/Ux+JMVVmYPfNfSBZOHBACWZwPTGPsGpH1e7tloj7fZeJzo7G1tdeob+3u72zv7e3s1+P1Iq+atHAcdI7p2pGJQ34x8TDRGlBzAAlvhXnO+63gVN+s18tMdmo2droHyizkOVKq3BmDc5slu7S0pwzK193eF1JIaQIyC/GR7ULTQF/hiAHdIWMBaFC0YMckJ7mHAiXV4HICnEiTk6YLHmO6k59iBIngAsYioZy3lMO2zDC/AYP7R+DqWgZ8qrEbNieJbfOqYWPIS8gQDAYQfRN22SyMQSEVzUdpEhXNqMdA8yZMtO9BN4SVTDfssz5TZKUgpN99MdkQhPQHoiYFIf0Roy4IaUFIC0J6trumIKQFIb1cmApCWp4lIY1NbFUiSWOHFWSNGqVIo8YEzqiRp4zSI8vhrMKnMbOWc5sK7eVZANT2dzVz+oggXTtVvq9nTiAnve5xZJ4KQeukd5DjR6PLen5yt5E/zFFIHEsaeb/dTJcdiHQKYbUIyGft7mGne9yUQv8r1L/odpnE9RFiklbv9OykrbYPm9LAHjrsLHSFjpTOCRXdAtOCwSysSrXuliFa+eNiimbd5b8YB7jkCZNlOx+7v8973eIPJuvFH+DNAZb+kyzTm9uKn+JMbnzTwibyarTb92BLKEqTPyf+y+E2XtoA/zkRFRl/pZikXF4VkOVZyOaCPHRd29WG0POAUbBZj99Eco5iG5lqG3Gn4xSynoJTWGROId4Tp+GJOV8R6UWOdCqdU/pKnriI3O3k3C2FKg9t+bztgFjWLsJGlhPQ3+ZqU9Opap42W+JUVHYTuh197UMLjLk+jv0fQCsC+Mt809nnIw/D4YltyIW57ES9MTmR7TFDzbKNcmlsWZECFwk+QISlNdI4ufB9spE1+kO6viaLKUC+o9lkPtB06PW15JD7H/QkIpFs8rBe4694s2qzTCKdTPsHM/jq+fS5RXq3ihTp30VGXWTUF3xFWtLcqsiof8Sol8mop9bs0vWlicsKJgk2y1aWTios5SnPePubhqmOnd+QqO50j3pVWerD9sHFcVNiP64QbaEp0X+v0DelH7DV4cMVavf7vX5TYj+uUKvfUTst5aQpRU+LwVRPQcm9loxbtI/jrdk4HWJgWpVY6JSLSAvMhJzO3f/fq7BYtW3rOIhaAFPBdYyz2Zh8J8PEWjNi83erL2bjEH/vQlyGxLFYXIZE1BfjMiTKiz9CgkiUF4vy4mXAVJQXi/LiRS8vjm8xOUAnlBinnVaCJJn332FwXHvoFJxJxtNQicdKACxKi0VpcRnCNihIrUIeJh6iglVUsC7naiUq3kTF21wBnWfF2+wTCC//AzlNOnU='
