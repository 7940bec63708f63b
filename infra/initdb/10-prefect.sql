-- Prefect's own database beside shardwatch's results (same server, separate databases).
CREATE DATABASE prefect OWNER shardwatch;
