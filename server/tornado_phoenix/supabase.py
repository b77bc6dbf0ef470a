"""placeholder"""
def supabase_routes(endpoint, sessions):
    return []
