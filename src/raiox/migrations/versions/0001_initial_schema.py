"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 06:55:38.805247
"""

import sqlalchemy as sa
from alembic import op
import pgvector.sqlalchemy
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    # procrastinate's job tables and functions (jobs live in the same database)
    op.execute(SchemaManager.get_schema())
    op.create_table('api_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('implant_systems',
    sa.Column('id', sa.String(length=120), nullable=False),
    sa.Column('manufacturer', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('connection', sa.String(length=80), nullable=True),
    sa.Column('body_shape', sa.String(length=80), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('spec', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_implant_systems')),
    sa.UniqueConstraint('manufacturer', 'name', name=op.f('uq_implant_systems_manufacturer'))
    )
    op.create_table('users',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('cases',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('jotform_submission_id', sa.String(length=40), nullable=False),
    sa.Column('form_id', sa.String(length=40), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('client_name', sa.String(length=300), nullable=True),
    sa.Column('client_email', sa.String(length=320), nullable=True),
    sa.Column('client_phone', sa.String(length=80), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('answers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('approved_system_id', sa.String(length=120), nullable=True),
    sa.Column('reviewed_by', sa.String(length=320), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('review_message', sa.Text(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['approved_system_id'], ['implant_systems.id'], name=op.f('fk_cases_approved_system_id_implant_systems')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('jotform_submission_id', name=op.f('uq_cases_jotform_submission_id'))
    )
    op.create_index(op.f('ix_cases_form_id'), 'cases', ['form_id'], unique=False)
    op.create_index(op.f('ix_cases_status'), 'cases', ['status'], unique=False)
    op.create_table('reference_images',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('system_id', sa.String(length=120), nullable=False),
    sa.Column('storage_key', sa.String(length=300), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('origin', sa.Text(), nullable=True),
    sa.Column('box', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['system_id'], ['implant_systems.id'], name=op.f('fk_reference_images_system_id_implant_systems'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_images')),
    sa.UniqueConstraint('system_id', 'sha256', name=op.f('uq_reference_images_system_id'))
    )
    op.create_index(op.f('ix_reference_images_sha256'), 'reference_images', ['sha256'], unique=False)
    op.create_index(op.f('ix_reference_images_system_id'), 'reference_images', ['system_id'], unique=False)
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('case_id', sa.Uuid(), nullable=True),
    sa.Column('target', sa.String(length=300), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_audit_log_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index(op.f('ix_audit_log_case_id'), 'audit_log', ['case_id'], unique=False)
    op.create_table('case_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('from_status', sa.String(length=30), nullable=True),
    sa.Column('to_status', sa.String(length=30), nullable=True),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_events_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_events'))
    )
    op.create_index(op.f('ix_case_events_case_id'), 'case_events', ['case_id'], unique=False)
    op.create_table('case_images',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=200), nullable=True),
    sa.Column('source_url', sa.Text(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=True),
    sa.Column('storage_key', sa.String(length=300), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=True),
    sa.Column('content_type', sa.String(length=100), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_images_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_images')),
    sa.UniqueConstraint('case_id', 'source_url', name=op.f('uq_case_images_case_id'))
    )
    op.create_index(op.f('ix_case_images_case_id'), 'case_images', ['case_id'], unique=False)
    op.create_index(op.f('ix_case_images_sha256'), 'case_images', ['sha256'], unique=False)
    op.create_table('case_rankings',
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.String(length=120), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('evidence', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_rankings_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['system_id'], ['implant_systems.id'], name=op.f('fk_case_rankings_system_id_implant_systems'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('case_id', 'rank', name=op.f('pk_case_rankings'))
    )
    op.create_table('deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('jotform_done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('email_message_id', sa.String(length=300), nullable=True),
    sa.Column('email_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_deliveries_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('case_id', name=op.f('uq_deliveries_case_id'))
    )
    op.create_table('reference_embeddings',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('reference_image_id', sa.Uuid(), nullable=False),
    sa.Column('system_id', sa.String(length=120), nullable=False),
    sa.Column('model_id', sa.String(length=120), nullable=False),
    sa.Column('embedding', pgvector.sqlalchemy.vector.VECTOR(dim=512), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['reference_image_id'], ['reference_images.id'], name=op.f('fk_reference_embeddings_reference_image_id_reference_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['system_id'], ['implant_systems.id'], name=op.f('fk_reference_embeddings_system_id_implant_systems'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_embeddings')),
    sa.UniqueConstraint('reference_image_id', 'model_id', name=op.f('uq_reference_embeddings_reference_image_id'))
    )
    op.create_index(op.f('ix_reference_embeddings_system_id'), 'reference_embeddings', ['system_id'], unique=False)
    op.create_table('fixtures',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('case_image_id', sa.Uuid(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('box', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('manual', sa.Boolean(), nullable=False),
    sa.Column('model_id', sa.String(length=120), nullable=False),
    sa.Column('embedding', pgvector.sqlalchemy.vector.VECTOR(dim=512), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['case_image_id'], ['case_images.id'], name=op.f('fk_fixtures_case_image_id_case_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fixtures')),
    sa.UniqueConstraint('case_image_id', 'index', name=op.f('uq_fixtures_case_image_id'))
    )
    op.create_index(op.f('ix_fixtures_case_image_id'), 'fixtures', ['case_image_id'], unique=False)
    op.create_table('fixture_results',
    sa.Column('fixture_id', sa.Uuid(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.String(length=120), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('reference_image_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['fixture_id'], ['fixtures.id'], name=op.f('fk_fixture_results_fixture_id_fixtures'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reference_image_id'], ['reference_images.id'], name=op.f('fk_fixture_results_reference_image_id_reference_images'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['system_id'], ['implant_systems.id'], name=op.f('fk_fixture_results_system_id_implant_systems'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('fixture_id', 'rank', name=op.f('pk_fixture_results'))
    )
    op.create_index(
        "ix_cases_status_created", "cases", ["status", "created_at"]
    )
    # ### end Alembic commands ###


def downgrade() -> None:
    op.drop_index("ix_cases_status_created", table_name="cases")
    op.drop_table('fixture_results')
    op.drop_index(op.f('ix_fixtures_case_image_id'), table_name='fixtures')
    op.drop_table('fixtures')
    op.drop_index(op.f('ix_reference_embeddings_system_id'), table_name='reference_embeddings')
    op.drop_table('reference_embeddings')
    op.drop_table('deliveries')
    op.drop_table('case_rankings')
    op.drop_index(op.f('ix_case_images_sha256'), table_name='case_images')
    op.drop_index(op.f('ix_case_images_case_id'), table_name='case_images')
    op.drop_table('case_images')
    op.drop_index(op.f('ix_case_events_case_id'), table_name='case_events')
    op.drop_table('case_events')
    op.drop_index(op.f('ix_audit_log_case_id'), table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_index(op.f('ix_reference_images_system_id'), table_name='reference_images')
    op.drop_index(op.f('ix_reference_images_sha256'), table_name='reference_images')
    op.drop_table('reference_images')
    op.drop_index(op.f('ix_cases_status'), table_name='cases')
    op.drop_index(op.f('ix_cases_form_id'), table_name='cases')
    op.drop_table('cases')
    op.drop_table('users')
    op.drop_table('implant_systems')
    op.drop_table('api_tokens')
    # ### end Alembic commands ###
