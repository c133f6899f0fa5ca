/// The IdP's few pages: sign-in, consent, a message. Plain HTML, every value escaped.
enum HTMLPages {
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func page(_ title: String, _ body: String) -> String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#1d2330}
        h1{font-size:1.3rem}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}
        button{margin-top:1rem;padding:.5rem 1.2rem;margin-right:.5rem}.err{color:#b00020}.muted{color:#667}</style></head>
        <body><h1>\(escape(title))</h1>\(body)</body></html>
        """
    }

    /// The sign-in form; `hidden` carries the authorization request through the POST.
    static func login(hidden: [(String, String)], error: String?, users: [String]) -> String {
        let fields = hidden.map { "<input type=\"hidden\" name=\"\(escape($0.0))\" value=\"\(escape($0.1))\">" }.joined()
        let err = error.map { "<p class=\"err\" role=\"alert\">\(escape($0))</p>" } ?? ""
        return page("Sign in to Switchboard IdP", """
            \(err)<form method="post" action="/oauth2/v1/authorize">\(fields)
            <label for="username">Username</label><input type="text" id="username" name="username" autocomplete="username" autofocus>
            <label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password">
            <button type="submit" id="sign-in">Sign in</button></form>
            <p class="muted">Development users: \(escape(users.joined(separator: ", ")))</p>
            """)
    }

    static func consent(appName: String, agentID: String, scopes: [String], interactionID: String, csrf: String, userName: String) -> String {
        page("Connect \(appName)?", """
            <p>Signed in as <strong>\(escape(userName))</strong>.</p>
            <p>The agent <strong>\(escape(agentID))</strong> asks to act on your behalf at <strong>\(escape(appName))</strong>
            with: \(escape(scopes.joined(separator: ", "))).</p>
            <form method="post" action="/oauth2/v1/interaction/\(escape(interactionID))">
            <input type="hidden" name="csrf" value="\(escape(csrf))">
            <button type="submit" name="decision" value="approve" id="approve">Allow</button>
            <button type="submit" name="decision" value="deny" id="deny">Deny</button></form>
            """)
    }

    static func message(_ title: String, _ text: String) -> String {
        page(title, "<p>\(escape(text))</p>")
    }
}
