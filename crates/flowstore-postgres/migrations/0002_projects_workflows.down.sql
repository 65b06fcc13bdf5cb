DROP TABLE workflow_shares;
DROP TABLE workflow_versions;
DROP TABLE workflows;
DROP TABLE projects;
