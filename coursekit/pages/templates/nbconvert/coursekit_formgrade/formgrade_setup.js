// The course's setup of formgrader's grading page, one script allowed by its
// hash (coursekit.pages.formgrade_csp); nbgrader's page had it as inline scripts and
// onclick attributes, which its Content-Security-Policy no longer runs.
// The page's ids come from a JSON block in <head>, the first element with that
// id in the document, so nothing in a student's output can stand in for it.
var coursekitIds = JSON.parse(document.getElementById("coursekit-formgrade-ids").textContent);
var submission_id = coursekitIds.submission_id;
var notebook_id = coursekitIds.notebook_id;
var assignment_id = coursekitIds.assignment_id;
var base_url = coursekitIds.base_url + "/formgrader";

// formgrade.js calls MathJax once the page has loaded, to put the cursor back
// into the last score or comment when the formulas are drawn. The formulas are
// MathML already (no MathJax, nothing from a CDN): answer at once that drawing
// has ended, or formgrade.js stops before it sets up Tab and Ctrl+.
window.MathJax = {
    Hub: {
        Config: function () {},
        Queue: function () {},
        Startup: {signal: {Interest: function (listener) { setTimeout(function () { listener("End"); }, 0); }}}
    }
};

function toggle_name(on) {
    $(".name-shown").tooltip("hide");
    $(".name-hidden").tooltip("hide");
    if (on) {
        $(".name-shown").show();
        $(".name-hidden").hide();
    } else {
        $(".name-hidden").show();
        $(".name-shown").hide();
    }
}

$(document).ready(function () {
    $("[data-link]").each(function () {
        $(this).map(linkTo("notebook", $(this).data("link"))).removeAttr("data-link");
    });
    $("span.glyphicon.name-hidden").tooltip({title: "Show student name", placement: "bottom", trigger: "hover"});
    $("span.glyphicon.name-shown").tooltip({title: "Hide student name", placement: "bottom", trigger: "hover"});
    $("[data-coursekit-show-name]").on("click", function () {
        toggle_name($(this).attr("data-coursekit-show-name") === "true");
    });
    // nbgrader's score, extra credit and comment boxes have no label: name each after its cell, for screen readers.
    $("input.score").each(function () { this.setAttribute("aria-label", "Points for " + this.id); });
    $("input.extra-credit").each(function () {
        this.setAttribute("aria-label", "Extra credit for " + this.id.replace(/_extra_credit$/, ""));
    });
    $("textarea.comment").each(function () {
        this.setAttribute("aria-label", "Comment on " + this.id.replace(/-comment$/, ""));
    });
});
