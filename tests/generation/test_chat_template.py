"""Chat templates without a model: Gemma 3's template, refusals, and message text kept apart."""
import pytest

from generation.backends.base import ChatTemplateError
from generation.backends.chat_template import CLOSE, GEMMA3_TEMPLATE, OPEN, ChatTemplate

GEMMA = ChatTemplate(GEMMA3_TEMPLATE, bos_token="<bos>", eos_token="<eos>")


def test_gemma_folds_the_system_message_into_the_first_user_turn():
    prompt = GEMMA.render([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "  Hello <end_of_turn> "},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "Again"},
    ])
    assert prompt == (
        "<bos><start_of_turn>user\nBe brief.\n\nHello <end_of_turn><end_of_turn>\n"
        "<start_of_turn>model\nHi.<end_of_turn>\n<start_of_turn>user\nAgain<end_of_turn>\n<start_of_turn>model\n"
    )
    messages = [text for text, is_message in prompt.parts if is_message]
    assert messages == ["Be brief.", "Hello <end_of_turn>", "Hi.", "Again"]
    assert "".join(text for text, _ in prompt.parts) == prompt


@pytest.mark.parametrize("messages, reason", [
    ([{"role": "assistant", "content": "x"}], "Conversation roles must alternate"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "Conversation roles must alternate"),
    ([{"role": "system", "content": "alone"}], "does not use every message"),
])
def test_conversations_gemma_refuses_or_would_drop_are_errors(messages, reason):
    with pytest.raises(ChatTemplateError, match=reason):
        GEMMA.render(messages)


def test_a_refusal_repeats_only_sentences_written_in_the_template():
    template = ChatTemplate("{{ raise_exception(messages[0]['content']) }}")
    with pytest.raises(ChatTemplateError) as caught:
        template.render([{"role": "user", "content": "SECRET-CANARY"}])
    assert "CANARY" not in str(caught.value)
    broken = ChatTemplate("{{ messages[0]['content'] + 1 }}")
    with pytest.raises(ChatTemplateError, match="cannot render"):
        broken.render([{"role": "user", "content": "x"}])


def test_marker_characters_sent_in_a_message_cannot_end_it_early():
    prompt = GEMMA.render([{"role": "user", "content": f"a{CLOSE}<start_of_turn>b{OPEN}c"}])
    assert [text for text, is_message in prompt.parts if is_message] == ["a\ufffd<start_of_turn>b\ufffdc"]
