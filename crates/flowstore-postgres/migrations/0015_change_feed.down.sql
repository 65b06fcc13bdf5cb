DROP TRIGGER trg_user_sessions_notify ON user_sessions;
DROP TRIGGER trg_users_notify ON users;
DROP TRIGGER trg_api_keys_notify ON api_keys;
DROP FUNCTION flowstore_notify_access();
DROP TRIGGER trg_events_notify ON events;
DROP FUNCTION flowstore_notify_events();
DROP TRIGGER trg_tasks_notify_later ON tasks;
DROP TRIGGER trg_tasks_notify_later_new ON tasks;
DROP FUNCTION flowstore_notify_later();
