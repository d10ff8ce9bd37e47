"""A battery of hostile HTML a student's notebook can carry, shared by the sanitizer's and the browser's tests.

Each payload either runs script, which sets the flag ``top.PWNED`` (the
browser tests read it), or makes the browser request something from ``{url}``
(a listener on 127.0.0.1 that the browser tests count requests on). A payload
is a format string: ``payload.format(url=...)``.
"""

#: What a payload's script does: set a flag on the top window (and, if it can, call the listener).
FLAG = "top.PWNED=1"

#: (name, HTML), at least one per class of the issue: scripts, event handlers, javascript: and data:text/html
#: URLs, frames, objects, forms, base, meta refresh, links (stylesheet, prefetch), CSS url(), SVG script and
#: foreignObject, MathML href, srcset, media, mutation-XSS tricks.
HTML_PAYLOADS = [
    ("script", "<script>" + FLAG + ";fetch('{url}/script')</script>"),
    ("script src", '<script src="{url}/script.js"></script>'),
    ("img onerror", "<img src=x onerror=" + FLAG + ">"),
    ("svg onload", "<svg onload=" + FLAG + "></svg>"),
    ("svg script", "<svg><script>" + FLAG + "</script></svg>"),
    ("svg foreignObject", "<svg><foreignObject><img src=x onerror=" + FLAG + "></foreignObject></svg>"),
    ("svg image", '<svg><image href="{url}/svg-image"/></svg>'),
    ("svg style mxss", "<svg><style><img src=x onerror=" + FLAG + "></style></svg>"),
    ("iframe src", '<iframe src="{url}/iframe"></iframe>'),
    ("iframe srcdoc", '<iframe srcdoc="&lt;script&gt;' + FLAG + '&lt;/script&gt;"></iframe>'),
    ("object", '<object data="{url}/object"></object>'),
    ("object data:text/html", '<object data="data:text/html,&lt;script&gt;' + FLAG + '&lt;/script&gt;"></object>'),
    ("embed", '<embed src="{url}/embed">'),
    ("form", '<form action="{url}/form"><input type="image" src="{url}/form-input"></form>'),
    ("button formaction", '<button formaction="{url}/formaction">b</button>'),
    ("base", '<base href="{url}/base/"><img src="relative.png">'),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url={url}/refresh">'),
    ("meta csp", "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src *\">"),
    ("link stylesheet", '<link rel="stylesheet" href="{url}/style.css">'),
    ("link prefetch", '<link rel="prefetch" href="{url}/prefetch">'),
    ("css url in style attribute", '<div style="background-image:url({url}/css-url)">styled</div>'),
    ("css import", "<style>@import url({url}/import.css); body {{background: url({url}/css-bg)}}</style>"),
    ("javascript link", '<a href="javascript:' + FLAG + '">click me</a>'),
    ("data:text/html link", '<a href="data:text/html,&lt;script&gt;' + FLAG + '&lt;/script&gt;">open</a>'),
    ("remote image", '<img src="{url}/img.png">'),
    ("srcset", '<img srcset="{url}/srcset.png 1x" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'),
    ("picture source", '<picture><source srcset="{url}/source.png"><img src="x"></picture>'),
    ("video", '<video src="{url}/video" autoplay></video>'),
    ("audio", '<audio src="{url}/audio" autoplay></audio>'),
    ("mathml href", '<math href="javascript:' + FLAG + '"><mi xlink:href="{url}/mathml">x</mi></math>'),
    ("mathml mxss", "<math><mtext><table><mglyph><style><img src=x onerror=" + FLAG + ">"),
    ("noscript mxss", '<noscript><p title="</noscript><img src=x onerror=' + FLAG + '>">'),
    ("details ontoggle", "<details open ontoggle=" + FLAG + "><summary>s</summary></details>"),
    ("input autofocus", "<input autofocus onfocus=" + FLAG + ">"),
    ("table background", '<table background="{url}/table-bg"><tr><td>t</td></tr></table>'),
    ("anchor ping", '<a href="#top" ping="{url}/ping">p</a>'),
    ("template", "<template><img src=x onerror=" + FLAG + "></template>"),
    ("style expression", '<div style="width: expression(' + FLAG + ')">e</div>'),
    ("position fixed overlay", '<div style="position:fixed;top:0;left:0;width:100%;height:100%">overlay</div>'),
    ("element id clobbering", '<div id="coursekit-formgrade-ids">{{"submission_id": "x"}}</div>'),
]

#: Markdown-only ways to reach the network: links and images.
MARKDOWN_PAYLOADS = [
    ("markdown link", "[a link]({url}/markdown-link)"),
    ("markdown image", "![an image]({url}/markdown-image.png)"),
    ("markdown javascript link", "[click](javascript:" + FLAG + ")"),
    ("markdown autolink", "<{url}/autolink>"),
]

#: An SVG figure with a script and a remote image inside, and a script output.
SVG_PAYLOAD = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="' + FLAG + '">'
               '<script>' + FLAG + '</script><image href="{url}/svg-output-image" width="10" height="10"/>'
               '<rect width="40" height="40" fill="red"/></svg>')
JAVASCRIPT_PAYLOAD = FLAG + ";fetch('{url}/javascript-output')"


def all_html(url):
    """Every HTML payload, formatted for ``url``, one after the other."""
    return "\n".join(payload.format(url=url) for _, payload in HTML_PAYLOADS)
