import marshmallow as ma


class RootSchema(ma.Schema):
    message = ma.fields.String(required=True)
    version = ma.fields.String(required=True)
    docs = ma.fields.String(required=True)
    redoc = ma.fields.String(required=True)


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"enum": ["healthy", "unhealthy"]})
    database = ma.fields.String(required=True, metadata={"description": "`ok` or the error"})
    redis = ma.fields.String(
        required=True, metadata={"description": "`ok`, `not configured`, or the error"}
    )
    migrations = ma.fields.String(metadata={"description": "`ok` or `pending` (readiness only)"})


class LivenessSchema(ma.Schema):
    status = ma.fields.String(required=True)
