-- POST one fixed body with every request.
-- Usage: wrk ... -s post_body.lua URL -- BODY_FILE CONTENT_TYPE
-- init runs in each wrk thread before wrk builds its request, so the body set here is sent.
function init(args)
   local file = assert(io.open(args[1], "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = args[2]
end
