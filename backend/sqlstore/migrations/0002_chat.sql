-- The chat resources of (docs/api.md, "Chat API"). Every table has id, org_id, created_at,
-- updated_at; the rest are the resource's own fields.
CREATE TABLE groups (
  id {{pk}},
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX groups_org ON groups(org_id, id);

CREATE TABLE contacts (
  id {{pk}},
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  email TEXT NOT NULL DEFAULT '',
  phone TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX contacts_org ON contacts(org_id, id);

CREATE TABLE conversations (
  id {{pk}},
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  contact_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
  customer_id TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'open',
  assignee_id BIGINT,
  subject TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX conversations_org ON conversations(org_id, id);

CREATE TABLE messages (
  id {{pk}},
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  content TEXT NOT NULL,
  message_type TEXT NOT NULL,
  sender_type TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  private INTEGER NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);
CREATE INDEX messages_org ON messages(org_id, id);

CREATE TABLE knowledge_items (
  id {{pk}},
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX knowledge_items_org ON knowledge_items(org_id, id);

CREATE TABLE forms (
  id {{pk}},
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX forms_org ON forms(org_id, id);

CREATE TABLE services (
  id {{pk}},
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX services_org ON services(org_id, id);

CREATE INDEX organizations_parent ON organizations(parent_id);
