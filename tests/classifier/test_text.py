"""Which part of a chat is scored."""

from classifier.text import text_for_scoring


def test_single_question_is_scored_as_is():
    assert text_for_scoring([{"role": "user", "content": "What is 2+2?"}]) == "What is 2+2?"


def test_short_follow_up_carries_the_question_it_follows():
    chat = [
        {"role": "user", "content": "Prove that the square root of 2 is irrational."},
        {"role": "assistant", "content": "Suppose sqrt(2) = p/q in lowest terms..."},
        {"role": "user", "content": "Now do the cube root of 3."},
    ]
    text = text_for_scoring(chat)
    assert text.startswith("Now do the cube root of 3.")
    assert "square root of 2" in text
    assert "Suppose" not in text  # the model's own words are not the task


def test_long_self_contained_turn_drops_earlier_context():
    long_turn = "Write a friendly note to my neighbour about the party next week " * 3
    chat = [
        {"role": "user", "content": "Integrate x^2 e^x dx."},
        {"role": "user", "content": long_turn},
    ]
    assert text_for_scoring(chat) == long_turn


def test_system_prompt_is_left_out_unless_asked_for():
    chat = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello there"},
    ]
    assert text_for_scoring(chat) == "Hello there"
    assert text_for_scoring(chat, include_system=True).endswith("You are a helpful assistant.")


def test_non_text_parts_are_skipped():
    chat = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "What is in this picture?"},
            ],
        }
    ]
    assert text_for_scoring(chat) == "What is in this picture?"


def test_chat_without_user_turn_falls_back_to_instructions():
    assert text_for_scoring([{"role": "system", "content": "Summarise."}]) == "Summarise."
    assert text_for_scoring([]) == ""
